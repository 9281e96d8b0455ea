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
  // onAdded runs once ADD_DEV gave the device its id; onReady once the device is live.
  struct Events {
    std::function<void(uint32_t)> onAdded;
    std::function<void(uint32_t)> onReady;
  };
  explicit Server(DeviceSpec spec, Events events = {}) : spec_(std::move(spec)), events_(std::move(events)) {}
  // Returns the process exit code; throws (after cleaning up) when setup fails.
  int run();

 private:
  DeviceSpec spec_;
  Events events_;
};

}  // namespace ublkd
