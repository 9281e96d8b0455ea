// ServeStatus: the one line `ublkd serve --status-fd FD` writes to its supervisor:
//   "ready <id>"                 the device is live as /dev/ublkb<id>
//   "failed <Kind> <message>"    setup failed; Kind is an ErrorKind name
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "service_error.h"

namespace ublkd {

struct ServeStatus {
  std::optional<uint32_t> readyId;  // set when ready
  ErrorKind failure = ErrorKind::Failed;
  std::string message;  // when failed

  static std::string ready(uint32_t id);
  static std::string failed(ErrorKind kind, std::string_view message);
  // Anything unparsable is a failure whose message quotes the line.
  static ServeStatus parse(std::string_view line);
};

}  // namespace ublkd
