// openCharDevice: opens /dev/ublkcN for a device, waiting within a bound for the node to appear
// (udev/devtmpfs) and for a transient opener (udev's probe) to let go (EBUSY).
#pragma once

#include <chrono>
#include <cstdint>

#include "unique_fd.h"

namespace ublk {

UniqueFd openCharDevice(uint32_t devId, std::chrono::milliseconds deadline = std::chrono::seconds(10));

}  // namespace ublk
