// Manager::Managed: all the Manager knows of one device (its view, queue daemon, backing store,
// crash policy and the callers waiting on it). Private to the Manager's own files: manager.cpp,
// manager_adoption.cpp, manager_resize.cpp and manager_statistics.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "abi.h"
#include "backing_store.h"
#include "child_process.h"
#include "crash_policy.h"
#include "device_spec.h"
#include "event_loop.h"
#include "manager.h"
#include "serve_status.h"
#include "stats_reader.h"

namespace ublkd {

// The backing store opened again from the spec's path, for a device whose open descriptor went
// with an earlier ublkd: it must still be the file the device was created on. Throws.
BackingStore reopenBacking(const std::string& specJson, FileIdentity expected);

struct Manager::Managed {
  using Clock = std::chrono::steady_clock;
  DeviceView view;
  Recovery recovery = kDefaultRecovery;  // the spec's
  // A loop device's backing store, opened once at CreateDevice and handed to every queue daemon;
  // identity says which file it is, so a path opened again (after a ublkd restart) is checked.
  std::optional<BackingStore> backing;
  std::optional<FileIdentity> backingIdentity;
  uint64_t kernelFlags = 0;  // UBLK_F_* the kernel granted the device
  uint64_t cookie = 0;       // its identity in the kernel (device_identity.h); 0 in records from before cookies
  std::optional<ChildProcess> child;  // none while a recovery waits out its backoff
  std::string statusLine;             // status pipe bytes not yet parsed
  std::optional<uint32_t> addedId;    // the kernel device, once ADD_DEV made it
  std::optional<ServeStatus> status;  // the queue daemon's last word: ready or failed
  bool timedOut = false;              // not ready in time: a late "ready" does not count
  unsigned awakeLooks = 0;            // overdue: looks in a row that found it out of the kernel
  bool stuckLogged = false;           // overdue: that it waits in the kernel was said
  EventLoop::TimerId deadline = 0;
  EventLoop::TimerId retry = 0;  // a recovery waiting out its backoff
  CrashPolicy crash;             // what an unplanned death leads to
  bool handingOver = false;      // SIGUSR2 sent: the next exit is planned
  bool probing = false;          // DeleteDevice's in-use check is running
  bool resizing = false;         // a ResizeDevice is under way
  CreateDone onCreated;
  std::map<uint64_t, DeleteDone> onDeleted;  // each DeleteDevice caller, answered once
  std::vector<RestartDone> onRestarted;
  stats::History stats;  // the samples GetStatistics' rates are computed against

  explicit Managed(const CrashPolicy::Options& crashOptions) : crash(crashOptions) {}

  bool recoverable() const {
    return recovery != Recovery::None && (kernelFlags & ublk::abi::feature::kUserRecovery) != 0;
  }
};

}  // namespace ublkd
