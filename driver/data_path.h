// DataPath: how a device's request data moves between the kernel and its server, and which one
// the flags ADD_DEV granted commit the device to.
#pragma once

#include <cstdint>
#include <string_view>

namespace ublk {

// Fixed for the device's life: every server of the device (a recovered one too) must speak it.
enum class DataPath {
  Copy,           // the kernel copies to and from a buffer per tag that the queue owns
  None,           // UBLK_F_USER_COPY: the kernel copies nothing (handlers that ignore data)
  HandlerMapped,  // UBLK_F_NEED_GET_DATA: the handler names where each request's data lives,
                  // and the kernel copies straight between the request and that memory
  ZeroCopy,       // UBLK_F_AUTO_BUF_REG: nothing is copied; the request's own pages are the
                  // ring's fixed buffer number `tag` while the handler serves it (*_FIXED I/O
                  // with buf_index = tag, addr = the offset in the request)
};

// The path a device with these granted UBLK_F_* flags is served with.
DataPath dataPathOf(uint64_t grantedFlags);
// "copy", "user-copy", "mapped" or "zero-copy": as the bus and the logs say it.
std::string_view dataPathName(DataPath path);

}  // namespace ublk
