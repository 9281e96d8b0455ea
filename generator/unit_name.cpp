// Unit names for paths: normalization and systemd's escaping, written from systemd.unit(5).
#include "unit_name.h"

#include <fmt/format.h>

namespace ublkd::generator {
namespace {

bool keptAsIs(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' || c == '_' || c == '.';
}

}  // namespace

std::optional<std::string> normalizedPath(std::string_view path) {
  if (!path.starts_with('/')) return std::nullopt;
  std::string result;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    const std::string_view part = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") return std::nullopt;
    result += '/';
    result += part;
  }
  return result.empty() ? "/" : result;
}

std::string escapePath(std::string_view normalized) {
  if (normalized == "/") return "-";
  std::string escaped;
  const std::string_view rest = normalized.substr(1);
  for (size_t i = 0; i < rest.size(); ++i) {
    const char c = rest[i];
    if (c == '/') {
      escaped += '-';
    } else if (keptAsIs(c) && !(c == '.' && i == 0)) {
      escaped += c;
    } else {
      escaped += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    }
  }
  return escaped;
}

std::string pathUnit(std::string_view normalized, std::string_view type) {
  return fmt::format("{}.{}", escapePath(normalized), type);
}

bool isUnder(std::string_view path, std::string_view prefix) {
  if (prefix == "/") return path.starts_with('/');
  return path.starts_with(prefix) && (path.size() == prefix.size() || path[prefix.size()] == '/');
}

}  // namespace ublkd::generator
