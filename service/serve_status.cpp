// ServeStatus: formatting and parsing of the serve -> supervisor status line.
#include "serve_status.h"

#include <charconv>

#include <fmt/format.h>

namespace ublkd {

std::string ServeStatus::added(uint32_t id) { return fmt::format("added {}\n", id); }
std::string ServeStatus::ready(uint32_t id) { return fmt::format("ready {}\n", id); }

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
    const std::string_view digits = line.substr(word.size());
    uint32_t id = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
    if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
    return id;
  };
  if (line.starts_with("ready ") || line.starts_with("added ")) {
    status.readyId = idAfter("ready ");
    status.addedId = idAfter("added ");
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
