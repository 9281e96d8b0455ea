// Server: serves one device in the foreground (`ublkd serve`). It creates the device from a spec,
// runs one pinned thread per queue, prints /dev/ublkbN, and on SIGTERM or SIGINT stops and
// deletes it. A failed setup step undoes every step before it; so does a queue thread's death.
#pragma once

#include <cstdint>
#include <functional>

#include "device_spec.h"

namespace ublkd {

class Server {
 public:
  // onReady runs once the device is live, with its id.
  explicit Server(DeviceSpec spec, std::function<void(uint32_t)> onReady = {})
      : spec_(std::move(spec)), onReady_(std::move(onReady)) {}
  // Returns the process exit code; throws (after cleaning up) when setup fails.
  int run();

 private:
  DeviceSpec spec_;
  std::function<void(uint32_t)> onReady_;
};

}  // namespace ublkd
