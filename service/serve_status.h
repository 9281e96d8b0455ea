// ServeStatus: the lines `ublkd serve --status-fd FD` writes to its supervisor:
//   "added <id>"                 ADD_DEV made device <id> (so a supervisor can remove it if the
//                                queue daemon dies before either of the lines below)
//   "ready <id> flags=0x<hex> queues=<n> depth=<n> bytes=<n>"
//                                the device is live as /dev/ublkb<id>, as the kernel granted it
//                                (so the supervisor need not ask the kernel); the last line
//   "failed <Kind> <message>"    setup failed, and was undone; Kind is an ErrorKind name
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "service_error.h"

namespace ublkd {

// A live device as the kernel granted it.
struct ServedGeometry {
  uint64_t flags = 0;  // UBLK_F_*
  uint16_t queues = 0;
  uint16_t depth = 0;
  uint64_t bytes = 0;
  bool operator==(const ServedGeometry&) const = default;
};

struct ServeStatus {
  std::optional<uint32_t> addedId;         // set by an "added" line
  std::optional<uint32_t> readyId;         // set by a "ready" line
  std::optional<ServedGeometry> geometry;  // and what it carries (nullopt from a bare "ready <id>")
  ErrorKind failure = ErrorKind::Failed;
  std::string message;  // when failed

  static std::string added(uint32_t id);
  static std::string ready(uint32_t id, const ServedGeometry& geometry);
  static std::string failed(ErrorKind kind, std::string_view message);
  // Anything unparsable is a failure whose message quotes the line.
  static ServeStatus parse(std::string_view line);
};

}  // namespace ublkd
