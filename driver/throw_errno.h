// How driver/ reports failures: std::system_error with the errno and a context naming the
// operation and its object ("ADD_DEV (device 3)", "open /dev/ublk-control").
#pragma once

#include <string>
#include <system_error>

namespace ublk {

[[noreturn]] inline void throwErrno(int err, const std::string& context) {
  throw std::system_error(err, std::generic_category(), context);
}

}  // namespace ublk
