// Server: serves one device in the foreground (`ublkd serve`). It creates the device from a spec
// (or, with a recover id, takes over an existing device whose queue daemon died), runs one pinned
// thread per queue, prints /dev/ublkbN, and on SIGTERM or SIGINT stops and deletes it. SIGUSR2
// hands the device over instead: QUIESCE_DEV, then exit leaving it for a recovering successor.
// A failed setup step undoes every step before it; a recovery never deletes the device it took.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "backing_store.h"
#include "device_spec.h"

namespace ublkd {

class Server {
 public:
  // onAdded runs once ADD_DEV gave the device its id; onReady once the device is live.
  struct Events {
    std::function<void(uint32_t)> onAdded;
    std::function<void(uint32_t)> onReady;
  };
  // With recoverId, the device exists already and is served again through user recovery. A loop
  // device serves `backing` (opened by ublkd), or opens the spec's path itself.
  explicit Server(DeviceSpec spec, Events events = {}, std::optional<uint32_t> recoverId = std::nullopt,
                  std::optional<BackingStore> backing = std::nullopt)
      : spec_(std::move(spec)), events_(std::move(events)), recoverId_(recoverId), backing_(std::move(backing)) {}
  // Returns the process exit code; throws (after cleaning up) when setup fails.
  int run();

 private:
  DeviceSpec spec_;
  Events events_;
  std::optional<uint32_t> recoverId_;
  std::optional<BackingStore> backing_;
};

}  // namespace ublkd
