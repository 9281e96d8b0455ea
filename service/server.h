// Server: serves one device in the foreground (`ublkd serve`). It creates the device from a spec
// (or, with a recover id, takes over an existing device whose queue daemon died), runs one pinned
// thread per queue, prints /dev/ublkbN, and on SIGTERM or SIGINT stops and deletes it. SIGUSR2
// hands the device over instead: QUIESCE_DEV, then exit leaving it for a recovering successor.
// A failed setup step undoes every step before it; a recovery never deletes the device it took.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "abi.h"
#include "backing_store.h"
#include "control_device.h"
#include "device_spec.h"
#include "serve_status.h"
#include "unique_fd.h"

namespace ublkd {

class Server {
 public:
  // onAdded runs once ADD_DEV gave the device its id; onReady once the device is live.
  struct Events {
    std::function<void(uint32_t)> onAdded;
    std::function<void(uint32_t, const ServedGeometry&)> onReady;
  };
  struct Options {
    // The device exists already and is served again through user recovery.
    std::optional<uint32_t> recoverId;
    // A loop device serves this (opened by ublkd), or opens the spec's path itself.
    std::optional<BackingStore> backing;
    // ublkd's identity for the device (device_identity.h): given to ADD_DEV, and a device to be
    // recovered must carry it. 0: none (a device served by hand).
    uint64_t cookie = 0;
    // Where the queue threads keep their statistics (stats_layout.h); none if not open.
    ublk::UniqueFd statsFd;
  };
  explicit Server(DeviceSpec spec, Events events, Options options)
      : spec_(std::move(spec)), events_(std::move(events)), options_(std::move(options)) {}
  // Returns the process exit code; throws (after cleaning up) when setup fails.
  int run();

 private:
  void followResize(ublk::ControlDevice& control, const ublk::abi::DevInfo& info, uint64_t bytes);

  DeviceSpec spec_;
  Events events_;
  Options options_;
};

}  // namespace ublkd
