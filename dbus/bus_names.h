// The bus names and object paths of ublkd, shared by the service and the client.
#pragma once

#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace ublkd::bus {

inline constexpr const char* kBusName = "org.ublk.Manager";
inline constexpr const char* kRootPath = "/org/ublk";
inline constexpr const char* kManagerPath = "/org/ublk/Manager";
inline constexpr const char* kManagerInterface = "org.ublk.Manager";
inline constexpr const char* kDeviceInterface = "org.ublk.Device";
inline std::string devicePath(uint32_t id) { return fmt::format("/org/ublk/Device/{}", id); }

}  // namespace ublkd::bus
