// ServeStatus: the lines `ublkd serve --status-fd FD` writes to its supervisor:
//   "added <id>"                 ADD_DEV made device <id> (so a supervisor can remove it if the
//                                queue daemon dies before either of the lines below)
//   "ready <id>"                 the device is live as /dev/ublkb<id>; the last line
//   "failed <Kind> <message>"    setup failed, and was undone; Kind is an ErrorKind name
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "service_error.h"

namespace ublkd {

struct ServeStatus {
  std::optional<uint32_t> addedId;  // set by an "added" line
  std::optional<uint32_t> readyId;  // set by a "ready" line
  ErrorKind failure = ErrorKind::Failed;
  std::string message;  // when failed

  static std::string added(uint32_t id);
  static std::string ready(uint32_t id);
  static std::string failed(ErrorKind kind, std::string_view message);
  // Anything unparsable is a failure whose message quotes the line.
  static ServeStatus parse(std::string_view line);
};

}  // namespace ublkd
