// Manager: the devices ublkd serves. Each device's data plane is a queue daemon (`ublkd serve`)
// in a child process, watched through its pidfd and status pipe on the daemon's EventLoop.
// Manager validates requests, starts and stops queue daemons, brings a device whose daemon died
// back through user recovery (`serve --recover`) unless it is crash-looping, removes the kernel
// device of one that cannot be recovered, and tells a Listener (the bus) about every change. It
// knows nothing of D-Bus.
#pragma once

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

#include <nlohmann/json_fwd.hpp>

#include "child_process.h"
#include "control_device.h"
#include "crash_policy.h"
#include "event_loop.h"
#include "service_error.h"

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

  std::string blockDevice() const;  // "/dev/ublkbN", or "" without an id
  std::string charDevice() const;
};

class Manager {
 public:
  struct Options {
    std::filesystem::path runDir = "/run/ublkd";
    std::string serveBinary;  // the ublkd executable, run as `serve`
    std::chrono::seconds startTimeout{60};
    std::chrono::seconds stopTimeout{30};
    uint64_t kernelFeatures = 0;
    // When an unplanned death is recovered at once, after a backoff, or ends recovery.
    CrashPolicy::Options crash;
  };

  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void deviceAdded(const DeviceView& device) = 0;  // live, with an id
    virtual void deviceRemoved(const DeviceView& device, const std::string& reason) = 0;
    virtual void deviceChanged(const DeviceView& device) = 0;  // state or properties
  };

  // Exactly one of the two is set.
  using CreateDone = std::function<void(const DeviceView* created, const ServiceError* error)>;
  using DeleteDone = std::function<void(const ServiceError* error)>;
  using RestartDone = DeleteDone;

  Manager(EventLoop& loop, ublk::ControlDevice& control, Options options);
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  void setListener(Listener* listener) { listener_ = listener; }

  // Errors found before anything starts (bad name or spec, duplicate name) are thrown as
  // ServiceError and change nothing; the outcome of starting arrives through `done`.
  void create(const std::string& name, const std::string& specJson, CreateDone done);
  // Throws NotFound, or Busy while the block device is held (mounted, in use by another driver)
  // or the device is still starting; otherwise `done` runs once the device is gone.
  void remove(const std::string& name, DeleteDone done);

  // Planned handover (kernels with UBLK_F_QUIESCE): the queue daemon quiesces the device and exits,
  // and a new one recovers it. Throws NotFound, Busy unless live, KernelUnsupported without
  // QUIESCE; `done` runs once a new daemon serves the device.
  void restart(const std::string& name, RestartDone done);

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

  void spawnServe(Managed& device, std::optional<uint32_t> recoverId);
  void adoptOne(std::unique_ptr<Managed> device);
  void watchChild(Managed& device);
  void onStatusReadable(const std::string& name);
  void onChildExit(const std::string& name);
  void becameLive(Managed& device, uint32_t id);
  void recovered(Managed& device);
  void afterDeath(Managed& device, bool planned);
  void startRecovery(const std::string& name);
  void failDevice(Managed& device, const std::string& why);
  void finishRemoval(const std::string& name, const std::string& reason);
  void removeKernelDevice(uint32_t id, const std::string& name, uint64_t cookie);
  bool kernelDeviceInUse(uint32_t id, uint64_t cookie, const std::string& name);
  std::optional<ublk::abi::DevInfo> ourKernelDevice(uint32_t id, uint64_t cookie, const std::string& name);
  void abandonStarting(const std::string& name, uint64_t cookie);
  EventLoop::TimerId killAfter(Managed& device, std::chrono::seconds timeout, std::string_view what);
  std::optional<ublk::abi::DevInfo> kernelDeviceInfo(uint32_t id);  // nullopt: no such device
  void fillFromKernel(Managed& device);
  nlohmann::json recordOf(const Managed& device) const;
  void writeRecord(const Managed& device);
  void removeFiles(const DeviceView& view);
  void announceName(const DeviceView& view);
  std::filesystem::path specPath(const std::string& name) const;
  std::filesystem::path recordPath(const std::string& name) const;
  std::filesystem::path udevPath(uint32_t id) const;

  EventLoop& loop_;
  ublk::ControlDevice& control_;
  Options options_;
  Listener* listener_ = nullptr;
  std::map<std::string, std::unique_ptr<Managed>, std::less<>> devices_;
};

// Device names become file, unit and link names: 1-64 of [A-Za-z0-9_.-], starting alphanumeric.
// Throws ServiceError(InvalidSpec) naming the problem.
void validateDeviceName(std::string_view name);

}  // namespace ublkd
