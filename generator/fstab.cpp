// fstab parsing: fields separated by blanks, with the octal escapes of fstab(5) (\040 for a space).
#include "fstab.h"

#include <algorithm>

namespace ublkd::generator {
namespace {

bool isOctal(char c) { return c >= '0' && c <= '7'; }

std::string unescaped(std::string_view field) {
  std::string result;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && isOctal(field[i + 1]) && isOctal(field[i + 2]) &&
        isOctal(field[i + 3])) {
      result += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0'));
      i += 3;
    } else {
      result += field[i];
    }
  }
  return result;
}

std::vector<std::string_view> fieldsOf(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (true) {
    pos = line.find_first_not_of(" \t\r", pos);
    if (pos == std::string_view::npos) break;
    const size_t end = std::min(line.find_first_of(" \t\r", pos), line.size());
    fields.push_back(line.substr(pos, end - pos));
    pos = end;
  }
  return fields;
}

std::vector<std::string> optionsOf(std::string_view field) {
  std::vector<std::string> options;
  while (!field.empty()) {
    const size_t comma = field.find(',');
    const std::string_view option = field.substr(0, comma);
    if (!option.empty()) options.push_back(unescaped(option));
    field = comma == std::string_view::npos ? std::string_view() : field.substr(comma + 1);
  }
  return options;
}

}  // namespace

bool FstabEntry::hasOption(std::string_view name) const {
  return std::ranges::any_of(options, [&](const std::string& option) {
    return name.ends_with('=') ? option.starts_with(name) : option == name;
  });
}

std::vector<FstabEntry> parseFstab(std::string_view text) {
  std::vector<FstabEntry> entries;
  int number = 0;
  while (!text.empty()) {
    const size_t newline = text.find('\n');
    const std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
    ++number;
    const std::vector<std::string_view> fields = fieldsOf(line);
    if (fields.size() < 2 || fields[0].starts_with('#')) continue;
    FstabEntry entry;
    entry.line = number;
    entry.what = unescaped(fields[0]);
    entry.where = unescaped(fields[1]);
    if (fields.size() > 2) entry.type = unescaped(fields[2]);
    entry.options = optionsOf(fields.size() > 3 ? fields[3] : "defaults");
    entries.push_back(std::move(entry));
  }
  return entries;
}

}  // namespace ublkd::generator
