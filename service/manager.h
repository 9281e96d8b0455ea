// Manager: the devices ublkd serves. Each device's data plane is a queue daemon (`ublkd serve`)
// in a child process, watched through its pidfd and status pipe on the daemon's EventLoop.
// Manager validates requests, starts and stops queue daemons, brings a device whose daemon died
// back through user recovery (`serve --recover`) unless it is crash-looping, removes the kernel
// device of one that cannot be recovered, and tells a Listener (the bus) about every change. It
// knows nothing of D-Bus. Nothing it does on the event loop waits on the kernel or a backing
// store: control commands are asynchronous with deadlines (ControlCommands), opens and probes
// run on worker threads (Offload), and every caller is answered within a deadline, with
// ErrorKind::Timeout naming what hangs when a queue daemon or the kernel does not answer.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "child_process.h"
#include "control_commands.h"
#include "control_device.h"
#include "crash_policy.h"
#include "device_records.h"
#include "event_loop.h"
#include "offload.h"
#include "service_error.h"
#include "stats_reader.h"

namespace ublkd {

enum class DeviceState { Starting, Live, Recovering, Stopping, Failed };
std::string_view stateName(DeviceState state);

inline constexpr uint32_t kNoDeviceId = UINT32_MAX;

struct DeviceView {
  std::string name;
  uint32_t id = kNoDeviceId;  // until the queue daemon reports the device live
  std::string target;
  DeviceState state = DeviceState::Starting;
  uint64_t sizeBytes = 0;
  uint16_t queues = 0;
  uint16_t depth = 0;
  std::string specJson;        // as the caller gave it
  std::string lastError;       // why a Failed device failed
  uint32_t restartCount = 0;   // queue daemons brought back by recovery (or a planned restart)
  std::string lastExitReason;  // how the last queue daemon ended, "" if none has
  std::string backing;         // the file or block device a loop device serves, as opened
  std::string dataPath;        // how request data moves (ublk::dataPathName); "" until live
  uid_t owner = 0;             // who created it; only root and the owner may read its spec

  std::string blockDevice() const;  // "/dev/ublkbN", or "" without an id
  std::string charDevice() const;
};

class Manager {
 public:
  struct Options {
    std::filesystem::path runDir = "/run/ublkd";
    std::string serveBinary;  // the ublkd executable, run as `serve`
    // A queue daemon not live in startTimeout, or not gone stopTimeout after SIGTERM, is
    // SIGKILLed (unless, and until, it sleeps in the kernel); its caller is answered with
    // Timeout killGrace later.
    // stopTimeout is longer than a daemon's own STOP_DEV deadline (10 s, server.cpp), so ublkd
    // never gives up on a daemon before the daemon gives up on the kernel.
    std::chrono::seconds startTimeout{60};
    std::chrono::seconds stopTimeout{15};
    std::chrono::seconds killGrace{5};
    uint64_t kernelFeatures = 0;
    // When an unplanned death is recovered at once, after a backoff, or ends recovery.
    CrashPolicy::Options crash;
  };

  class Listener {
   public:
    virtual ~Listener() = default;
    // The name is taken (a create under way, or a device adopted or failed before this ublkd).
    virtual void deviceAdded(const DeviceView& device) = 0;
    // The name is free again: removed, or its create failed.
    virtual void deviceRemoved(const DeviceView& device, const std::string& reason) = 0;
    virtual void deviceChanged(const DeviceView& device) = 0;  // state or properties
  };

  // Exactly one of the two is set.
  using CreateDone = std::function<void(const DeviceView* created, const ServiceError* error)>;
  using DeleteDone = std::function<void(const ServiceError* error)>;
  using RestartDone = DeleteDone;
  using ResizeDone = DeleteDone;

  Manager(EventLoop& loop, ublk::ControlDevice& control, Options options);
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  void setListener(Listener* listener) { listener_ = listener; }

  // Errors found before anything starts (bad name or spec, duplicate name) are thrown as
  // ServiceError and change nothing; the outcome of starting arrives through `done` (a backing
  // store that cannot be opened included: that check runs off the loop). `owner` is the caller's uid.
  void create(const std::string& name, const std::string& specJson, uid_t owner, CreateDone done);
  // Throws NotFound, or Busy while the device is still starting; otherwise `done` runs once the
  // device is gone, with Busy while the block device is held (mounted, in use by another driver),
  // or Timeout once stopTimeout + killGrace pass with the queue daemon stuck in the kernel (the
  // removal then goes on, and ends when the daemon does).
  void remove(const std::string& name, DeleteDone done);

  // Planned handover (kernels with UBLK_F_QUIESCE): the queue daemon quiesces the device and exits,
  // and a new one recovers it. Throws NotFound, Busy unless live, KernelUnsupported without
  // QUIESCE; `done` runs once a new daemon serves the device.
  void restart(const std::string& name, RestartDone done);

  // Online resize (UPDATE_SIZE, Linux 6.16+) to `bytes`, a multiple of the device's logical block.
  // A loop device's backing file grows first (a block device must be that large already); a
  // device that would shrink needs `force` (what lies past the new end is cut off, the backing
  // file is left as it is). Throws NotFound, Busy unless live, KernelUnsupported without
  // UPDATE_SIZE, InvalidSpec naming what is wrong with the size or the target; `done` runs once
  // the kernel has the new size, with Failed or Timeout if the backing store or the kernel refused.
  void resize(const std::string& name, uint64_t bytes, bool force, ResizeDone done);

  // The device's statistics (stats_reader.h), with rates over the time since an earlier call at
  // least a second ago. Throws NotFound, or Busy while it has none yet (its queue daemon is
  // still starting), or Failed when they cannot be read.
  stats::Report statistics(const std::string& name);

  std::vector<DeviceView> list() const;
  const DeviceView* find(std::string_view name) const;
  const DeviceView* findById(uint32_t id) const;

  // Takes over the queue daemons an earlier ublkd left running (their records in runDir); a
  // device whose daemon is gone is recovered, or removed if it cannot be.
  void adoptPrevious();
  // On ublkd's exit: live devices stay served by their queue daemons, to be adopted by the next
  // ublkd; devices still starting are stopped.
  void detachAll();

 private:
  struct Managed;
  using Then = std::function<void()>;

  Managed* lookup(const std::string& name, const Managed* expected);  // nullptr once it is gone
  void startCreated(Managed& device);
  void createFailed(const std::string& name, const Managed* which, const ServiceError& error);
  void forgetStarting(Managed& device, const ServiceError& error);
  void spawnServe(Managed& device, std::optional<uint32_t> recoverId);
  void adoptOne(std::unique_ptr<Managed> device, const DeviceRecord& record);
  void watchChild(Managed& device);
  void onStatusReadable(const std::string& name);
  void onChildExit(const std::string& name);
  void becameLive(Managed& device, uint32_t id);
  void recovered(Managed& device);
  void afterDeath(Managed& device, bool planned);
  void afterDeathChecked(Managed& device, const CrashPolicy::Verdict& verdict, bool kernelDeviceInUse);
  void startRecovery(const std::string& name);
  void reopenThenRecover(Managed& device);
  void failDevice(Managed& device, const std::string& why);
  void awaitRemoval(Managed& device, DeleteDone done);
  void probed(const std::string& name, const Managed* which, bool held);
  void proceedRemoval(Managed& device);
  void finishRemoval(const std::string& name, const std::string& reason);
  void removeThenFinish(Managed& device, std::string reason);
  void growBackingThenResize(Managed& device, uint64_t bytes, bool readOnly, ResizeDone done);
  void updateKernelSize(Managed& device, uint64_t bytes, ResizeDone done);
  void answerDeleters(Managed& device, const ServiceError& error);
  std::string stuckText(const Managed& device) const;
  // STOP_DEV and DEL_DEV of our kernel device at `id` (a foreign one is left alone), then `then`.
  void removeKernelDevice(uint32_t id, const std::string& name, uint64_t cookie, Then then = {});
  void deleteKernelDevice(uint32_t id, const std::string& name, Then then);
  // Whether the kernel still has our device with a disk (not stopped, not deleted).
  void checkKernelDevice(uint32_t id, uint64_t cookie, const std::string& name, std::function<void(bool)> done);
  void abandonStarting(const std::string& name, uint64_t cookie);
  EventLoop::TimerId killAfter(Managed& device, std::chrono::seconds timeout, std::string_view what);
  void killOverdue(const std::string& name, pid_t pid, std::chrono::seconds timeout, const std::string& what);
  std::optional<ublk::abi::DevInfo> kernelDeviceInfo(uint32_t id);  // adoption only; nullopt: no such device
  DeviceRecord recordOf(const Managed& device) const;
  void writeRecord(const Managed& device);
  void removeFiles(const DeviceView& view);
  void announceName(const DeviceView& view);

  EventLoop& loop_;
  ublk::ControlDevice& control_;  // blocking commands, for adoption before the bus is served
  Options options_;
  DeviceRecords records_;
  ublk::ControlDevice asyncControl_;  // everything on the running loop
  ControlCommands commands_;
  Offload offload_;
  Listener* listener_ = nullptr;
  uint64_t nextWaiter_ = 1;
  std::map<std::string, std::unique_ptr<Managed>, std::less<>> devices_;
};

// Device names become file, unit and link names: 1-64 of [A-Za-z0-9_.-], starting alphanumeric.
// Throws ServiceError(InvalidSpec) naming the problem.
void validateDeviceName(std::string_view name);

}  // namespace ublkd
