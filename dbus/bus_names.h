// The bus names and object paths of ublkd, shared by the service and the client.
#pragma once

#include <cstdint>
#include <string>

#include <sdbus-c++/Types.h>

namespace ublkd::bus {

inline constexpr const char* kBusName = "org.ublk.Manager";
inline constexpr const char* kRootPath = "/org/ublk";
inline constexpr const char* kManagerPath = "/org/ublk/Manager";
inline constexpr const char* kManagerInterface = "org.ublk.Manager";
inline constexpr const char* kDeviceInterface = "org.ublk.Device";
// One row of ListDevices: name, id, target, state, size in bytes, block device.
using DeviceListRow = sdbus::Struct<std::string, uint32_t, std::string, std::string, uint64_t, std::string>;
// A device's object: /org/ublk/Device/ and its name, escaped as systemd escapes unit names in
// object paths (sd_bus_path_encode: "disk0" stays, "db-1" is "db_2d1"), so a name has one path.
std::string devicePath(const std::string& name);

}  // namespace ublkd::bus
