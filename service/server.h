// Server: serves one device in the foreground (`ublkd serve`). It creates the device from a spec,
// runs one pinned thread per queue, prints /dev/ublkbN, and on SIGTERM or SIGINT stops and
// deletes it. A failed setup step undoes every step before it; so does a queue thread's death.
#pragma once

#include <cstdint>

#include "device_spec.h"

namespace ublkd {

class Server {
 public:
  explicit Server(DeviceSpec spec) : spec_(std::move(spec)) {}
  // Returns the process exit code; throws (after cleaning up) when setup fails.
  int run();

 private:
  DeviceSpec spec_;
};

}  // namespace ublkd
