// DeviceIdentity: cookies and the list of the kernel's ublk devices.
#include "device_identity.h"

#include <sys/random.h>

#include <cerrno>
#include <charconv>
#include <filesystem>
#include <system_error>

#include <fmt/format.h>

namespace ublkd {

uint64_t newCookie() {
  uint32_t random = 0;
  while (::getrandom(&random, sizeof(random), 0) != sizeof(random)) {
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "getrandom (device cookie)");
  }
  return kCookieMark | random;
}

std::string cookieText(uint64_t cookie) { return fmt::format("{:#018x}", cookie); }

std::vector<uint32_t> kernelDeviceIds() {
  std::vector<uint32_t> ids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/class/ublk-char", ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("ublkc")) continue;
    uint32_t id = 0;
    const auto [end, error] = std::from_chars(name.data() + 5, name.data() + name.size(), id);
    if (error == std::errc() && end == name.data() + name.size()) ids.push_back(id);
  }
  return ids;
}

}  // namespace ublkd
