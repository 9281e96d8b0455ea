// Manager, adoption: what a ublkd started afresh does with the devices an earlier one left (their
// records in the run directory). A queue daemon that still serves its device is adopted as it is;
// a device whose daemon died meanwhile is recovered, or removed; one whose creation was cut short
// is removed; another server's device at a recorded id is left alone. Runs before the bus is
// served, so its kernel commands are the blocking ones (with their deadline).
#include <signal.h>
// glibc 2.36 declares these without C linkage for C++ (fixed in 2.37).
extern "C" {
#include <sys/pidfd.h>
}

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

#include "data_path.h"
#include "device_identity.h"
#include "device_spec.h"
#include "log.h"
#include "managed_device.h"
#include "manager.h"
#include "process_info.h"
#include "text_file.h"

namespace ublkd {

namespace fs = std::filesystem;

std::optional<ublk::abi::DevInfo> Manager::kernelDeviceInfo(uint32_t id) {
  try {
    return control_.getDeviceInfo(id);
  } catch (const std::system_error& e) {
    if (e.code().value() == ENODEV || e.code().value() == ENOENT) return std::nullopt;
    throw;
  }
}

namespace {

// The backing store a live queue daemon serves (its fd 4), taken from it: the same open file.
std::optional<BackingStore> takeBacking(const ChildProcess& child, const std::string& path, FileIdentity expected) {
  ublk::UniqueFd fd(static_cast<int>(::pidfd_getfd(child.pidfd(), ChildProcess::kPassedFd, 0)));
  if (!fd) return std::nullopt;
  try {
    BackingStore store = BackingStore::fromFd(std::move(fd), path);
    if (store.identity() == expected) return store;
  } catch (const SpecError&) {
  }
  return std::nullopt;
}

// Whether argv is `ublkd serve --spec specFile ...`: a pid alone may have been reused.
bool servesSpec(const std::vector<std::string>& argv, const std::string& specFile) {
  return argv.size() >= 4 && argv[1] == "serve" && argv[2] == "--spec" && argv[3] == specFile;
}

// Queue daemons for specFile that no ublkd watches any more: a recovery an earlier ublkd left
// half done, which would race the one about to start.
void killStrayServers(const std::string& specFile) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string file = entry.path().filename().string();
    if (file.find_first_not_of("0123456789") != std::string::npos) continue;
    // The pidfd first, then the check: a signal through it cannot hit a recycled pid.
    const pid_t pid = std::stoi(file);
    if (auto stray = ChildProcess::adopt(pid); stray && servesSpec(commandLine(pid), specFile)) stray->signal(SIGKILL);
  }
}

}  // namespace

void Manager::adoptPrevious() {
  for (const fs::path& file : records_.recordFiles()) {
    try {
      const DeviceRecord record = DeviceRecord::fromJson(readTextFile(file));
      auto device = std::make_unique<Managed>(options_.crash);
      DeviceView& view = device->view;
      view.name = record.name;
      device->cookie = record.cookie;
      if (record.state == "starting") {
        abandonStarting(view.name, device->cookie);
        continue;
      }
      view.specJson = record.spec;
      view.owner = record.owner;
      const DeviceSpec spec = parseDeviceSpec(view.specJson);
      view.target = toString(spec.target);
      if (record.state == "failed") {
        view.state = DeviceState::Failed;
        view.lastError = record.reason;
        log::warning(fmt::format("device {}: failed before ublkd restarted: {}", view.name, view.lastError),
                     {{"DEVICE", view.name}});
        const Managed& ref = *devices_.emplace(view.name, std::move(device)).first->second;
        if (listener_ != nullptr) listener_->deviceAdded(ref.view);
        continue;
      }
      if (record.id == kNoDeviceId) throw std::runtime_error("the record has no device id");
      view.id = record.id;
      view.restartCount = record.restarts;
      view.lastExitReason = record.lastExitReason;
      view.backing = record.backingPath;
      device->backingIdentity = record.backing;
      view.sizeBytes = record.sizeBytes.value_or(spec.size.value_or(0));
      device->recovery = spec.recovery;
      adoptOne(std::move(device), record);
    } catch (const std::exception& e) {
      log::error(fmt::format("cannot adopt the device recorded in {}: {}", file.string(), e.what()));
    }
  }
}

// The kernel says who serves the device (GET_DEV_INFO's ublksrv_pid); if that is our queue daemon
// for this device, it is adopted as it is. Otherwise the device is recovered, or removed.
void Manager::adoptOne(std::unique_ptr<Managed> device, const DeviceRecord& record) {
  DeviceView& view = device->view;
  const std::string name = view.name;
  const auto info = kernelDeviceInfo(view.id);
  if (!info) {
    log::warning(fmt::format("device {}: /dev/ublkb{} is gone; forgetting it", name, view.id), {{"DEVICE", name}});
    removeFiles(view);
    if (listener_ != nullptr) listener_->deviceRemoved(view, "its kernel device went away while ublkd was down");
    return;
  }
  if (device->cookie != 0 && info->ublksrv_flags != device->cookie) {
    log::warning(fmt::format("device {}: /dev/ublkb{} is another server's device now (cookie {}, ours was {}); "
                             "leaving it alone and forgetting ours",
                             name, view.id, cookieText(info->ublksrv_flags), cookieText(device->cookie)),
                 {{"DEVICE", name}});
    removeFiles(view);
    return;
  }
  const pid_t server = info->ublksrv_pid;
  const bool live = static_cast<ublk::abi::DevState>(info->state) == ublk::abi::DevState::Live;
  if (live && server > 0) {
    auto child = ChildProcess::adopt(server);
    if (child && servesSpec(commandLine(server), records_.specPath(name).string())) device->child = std::move(child);
  }
  if (device->child && device->backingIdentity) {
    // Without it (no ptrace right over the daemon), the path is opened again and checked if the
    // daemon ever has to be replaced.
    device->backing = takeBacking(*device->child, view.backing, *device->backingIdentity);
    if (!device->backing) {
      log::warning(fmt::format("device {}: cannot take the open backing store from queue daemon pid {} "
                               "(pidfd_getfd: {}); a recovery opens {} again and serves it only if it is "
                               "still the same file",
                               name, server, std::strerror(errno), view.backing),
                   {{"DEVICE", name}});
    }
  }
  // Not GET_PARAMS: it takes the device's lock in the kernel, which a daemon's stuck STOP_DEV holds.
  device->kernelFlags = info->flags;
  view.dataPath = std::string(ublk::dataPathName(ublk::dataPathOf(info->flags)));
  view.queues = info->nr_hw_queues;
  view.depth = info->queue_depth;
  if (!record.sizeBytes) {
    log::warning(fmt::format("device {}: its record (from an older ublkd) has no size; showing the spec's", name),
                 {{"DEVICE", name}});
  }
  Managed& ref = *devices_.emplace(name, std::move(device)).first->second;
  if (ref.child) {
    ref.view.state = DeviceState::Live;
    ref.crash.live(Managed::Clock::now());
    writeRecord(ref);
    watchChild(ref);
    log::info(fmt::format("device {}: adopted {} (queue daemon pid {})", name, view.blockDevice(), server),
              {{"DEVICE", name}, {"TARGET", view.target}});
    if (listener_ != nullptr) listener_->deviceAdded(ref.view);
    return;
  }
  killStrayServers(records_.specPath(name).string());
  ref.view.state = DeviceState::Recovering;  // so the bus shows it; afterDeath decides
  if (listener_ != nullptr) listener_->deviceAdded(ref.view);
  ref.view.lastExitReason = fmt::format("queue daemon (pid {}) gone while ublkd was down", server);
  afterDeath(ref, false);
}

// A device whose CreateDevice an earlier ublkd did not finish (it died between recording the
// device and its being live): its caller was told it failed, so the kernel device carrying the
// cookie, if ADD_DEV made one, goes, and so does its queue daemon.
void Manager::abandonStarting(const std::string& name, uint64_t cookie) {
  killStrayServers(records_.specPath(name).string());
  for (const uint32_t id : kernelDeviceIds()) {
    std::optional<ublk::abi::DevInfo> info;
    try {
      info = kernelDeviceInfo(id);
    } catch (const std::exception& e) {
      log::warning(fmt::format("device {}: cannot read /dev/ublkb{}: {}", name, id, e.what()), {{"DEVICE", name}});
    }
    if (!info || cookie == 0 || info->ublksrv_flags != cookie) continue;
    log::warning(fmt::format("device {}: removing /dev/ublkb{}: its creation was cut short by a ublkd exit", name, id),
                 {{"DEVICE", name}});
    removeKernelDevice(id, name, cookie);
  }
  DeviceView view;
  view.name = name;
  removeFiles(view);
}

}  // namespace ublkd
