// openCharDevice: bounded retries on ENOENT and EBUSY.
#include "char_device.h"

#include <fcntl.h>

#include <cerrno>
#include <thread>

#include <fmt/format.h>

namespace ublk {

UniqueFd openCharDevice(uint32_t devId, std::chrono::milliseconds deadline) {
  const std::string path = fmt::format("/dev/ublkc{}", devId);
  const auto giveUp = std::chrono::steady_clock::now() + deadline;
  for (unsigned attempt = 0;; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd >= 0) return UniqueFd(fd);
    const int err = errno;
    const bool transient = err == ENOENT || err == EBUSY || err == EINTR;
    if (!transient || std::chrono::steady_clock::now() >= giveUp) {
      throwErrno(err, fmt::format("open {} (after {} attempts)", path, attempt + 1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace ublk
