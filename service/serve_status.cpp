// ServeStatus: formatting and parsing of the serve -> supervisor status line.
#include "serve_status.h"

#include <charconv>

#include <fmt/format.h>

namespace ublkd {

std::string ServeStatus::added(uint32_t id) { return fmt::format("added {}\n", id); }
std::string ServeStatus::ready(uint32_t id, const ServedGeometry& g) {
  return fmt::format("ready {} flags={:#x} queues={} depth={} bytes={}\n", id, g.flags, g.queues, g.depth, g.bytes);
}

namespace {

template <typename T>
bool parseNumber(std::string_view text, T& value, int base = 10) {
  if (base == 16) {
    if (!text.starts_with("0x")) return false;
    text.remove_prefix(2);
  }
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

// "flags=0x4a queues=1 depth=128 bytes=1048576"; nullopt unless every field is there and sound.
std::optional<ServedGeometry> parseGeometry(std::string_view fields) {
  ServedGeometry g;
  unsigned seen = 0;
  while (!fields.empty()) {
    const size_t space = fields.find(' ');
    const std::string_view field = fields.substr(0, space);
    fields = space == std::string_view::npos ? std::string_view() : fields.substr(space + 1);
    const size_t eq = field.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view key = field.substr(0, eq);
    const std::string_view value = field.substr(eq + 1);
    bool ok = false;
    if (key == "flags") ok = parseNumber(value, g.flags, 16);
    if (key == "queues") ok = parseNumber(value, g.queues);
    if (key == "depth") ok = parseNumber(value, g.depth);
    if (key == "bytes") ok = parseNumber(value, g.bytes);
    if (!ok) return std::nullopt;
    ++seen;
  }
  if (seen != 4) return std::nullopt;
  return g;
}

}  // namespace

std::string ServeStatus::failed(ErrorKind kind, std::string_view message) {
  std::string oneLine(message);
  for (char& c : oneLine) {
    if (c == '\n') c = ' ';
  }
  return fmt::format("failed {} {}\n", errorKindName(kind), oneLine);
}

ServeStatus ServeStatus::parse(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  ServeStatus status;
  auto idAfter = [&](std::string_view word) -> std::optional<uint32_t> {
    if (!line.starts_with(word)) return std::nullopt;
    std::string_view digits = line.substr(word.size());
    digits = digits.substr(0, digits.find(' '));
    uint32_t id = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
    if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
    return id;
  };
  if (line.starts_with("ready ") || line.starts_with("added ")) {
    status.readyId = idAfter("ready ");
    status.addedId = idAfter("added ");
    if (status.readyId) {
      const size_t space = line.find(' ', 6);
      if (space != std::string_view::npos) {
        status.geometry = parseGeometry(line.substr(space + 1));
        if (!status.geometry) status.readyId.reset();  // fields, but garbled: not a ready line
      }
    }
    if (status.readyId || status.addedId) return status;
  } else if (line.starts_with("failed ")) {
    const std::string_view rest = line.substr(7);
    const size_t space = rest.find(' ');
    if (const auto kind = errorKindFromName(rest.substr(0, space))) {
      status.failure = *kind;
      status.message = space == std::string_view::npos ? "" : std::string(rest.substr(space + 1));
      return status;
    }
  }
  status.message = fmt::format("queue daemon sent an unexpected status '{}'", line);
  return status;
}

}  // namespace ublkd
