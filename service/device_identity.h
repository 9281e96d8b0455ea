// DeviceIdentity: how ublkd knows a kernel ublk device is one it made. The kernel hands a freed id
// out again at once, so an id alone may name another server's device. Every device ublkd creates
// carries a cookie in the device info the kernel keeps for the server (ublksrv_flags, echoed by
// GET_DEV_INFO): ublkd's mark in the high 32 bits, a random number in the low 32. The cookie is
// recorded in /run/ublkd before ADD_DEV, and every stop, delete, recovery and adoption checks it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ublkd {

inline constexpr uint64_t kCookieMark = 0x55424b4400000000;  // "UBKD"
inline constexpr uint64_t kCookieMarkMask = 0xffffffff00000000;

// A new cookie: the mark and 32 random bits (getrandom). Throws std::system_error.
uint64_t newCookie();
// Whether ublksrv_flags carries ublkd's mark (a device some ublkd made).
inline bool hasOurMark(uint64_t ublksrvFlags) { return (ublksrvFlags & kCookieMarkMask) == kCookieMark; }

std::string cookieText(uint64_t cookie);  // "0x55424b44c0ffee00"

// The ids of every ublk device the kernel has now (its /sys/class/ublk-char entries), whoever made them.
std::vector<uint32_t> kernelDeviceIds();

}  // namespace ublkd
