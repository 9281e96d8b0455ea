// Manager: device records, queue daemon supervision and kernel-device cleanup.
#include "manager.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "abi.h"
#include "device_spec.h"
#include "log.h"
#include "serve_status.h"
#include "text_file.h"

namespace ublkd {

namespace fs = std::filesystem;

struct Manager::Managed {
  DeviceView view;
  std::optional<ChildProcess> child;
  std::string statusLine;             // status pipe bytes not yet parsed
  std::optional<uint32_t> addedId;    // the kernel device, once ADD_DEV made it
  std::optional<ServeStatus> status;  // the queue daemon's last word: ready or failed
  bool timedOut = false;              // not ready in time: a late "ready" does not count
  EventLoop::TimerId deadline = 0;
  CreateDone onCreated;
  std::vector<DeleteDone> onDeleted;
};

namespace {

std::string_view targetName(TargetKind kind) { return kind == TargetKind::Null ? "null" : "loop"; }

void writeFileAtomically(const fs::path& path, const std::string& text) {
  const fs::path temporary = path.string() + ".new";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw std::system_error(errno, std::generic_category(), fmt::format("write {}", temporary.string()));
  }
  fs::rename(temporary, path);
}

}  // namespace

std::string_view stateName(DeviceState state) {
  switch (state) {
    case DeviceState::Starting:
      return "starting";
    case DeviceState::Live:
      return "live";
    case DeviceState::Stopping:
      return "stopping";
    case DeviceState::Failed:
      return "failed";
  }
  return "unknown";
}

std::string DeviceView::blockDevice() const { return id == kNoDeviceId ? "" : fmt::format("/dev/ublkb{}", id); }
std::string DeviceView::charDevice() const { return id == kNoDeviceId ? "" : fmt::format("/dev/ublkc{}", id); }

void validateDeviceName(std::string_view name) {
  auto reject = [&](std::string_view why) {
    throw ServiceError(ErrorKind::InvalidSpec, fmt::format("device name '{}': {}", name, why));
  };
  if (name.empty() || name.size() > 64) reject("must be 1 to 64 characters");
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front())) reject("must start with a letter or digit");
  for (const char c : name) {
    if (!alnum(c) && c != '_' && c != '.' && c != '-') reject("may contain only letters, digits, '_', '.' and '-'");
  }
}

Manager::Manager(EventLoop& loop, ublk::ControlDevice& control, Options options)
    : loop_(loop), control_(control), options_(std::move(options)) {
  fs::create_directories(options_.runDir / "devices");
  fs::create_directories(options_.runDir / "udev");
}

Manager::~Manager() = default;

fs::path Manager::specPath(const std::string& name) const {
  return options_.runDir / "devices" / (name + ".spec.json");
}
fs::path Manager::recordPath(const std::string& name) const {
  return options_.runDir / "devices" / (name + ".state.json");
}
fs::path Manager::udevPath(uint32_t id) const { return options_.runDir / "udev" / fmt::format("ublkb{}", id); }

void Manager::create(const std::string& name, const std::string& specJson, CreateDone done) {
  validateDeviceName(name);
  if (devices_.contains(name)) {
    throw ServiceError(ErrorKind::Exists, fmt::format("a device named '{}' already exists", name));
  }
  DeviceSpec spec;
  try {
    spec = parseDeviceSpec(specJson);
    checkBacking(spec);
  } catch (const SpecError& e) {
    throw ServiceError(ErrorKind::InvalidSpec, fmt::format("spec of '{}': {}", name, e.what()));
  }
  if (spec.recovery == Recovery::FailIo && (options_.kernelFeatures & ublk::abi::feature::kUserRecoveryFailIo) == 0) {
    throw ServiceError(ErrorKind::KernelUnsupported,
                       fmt::format("spec of '{}': /recovery: fail-io needs a kernel with USER_RECOVERY_FAIL_IO "
                                   "(6.13 or newer)",
                                   name));
  }

  auto device = std::make_unique<Managed>();
  device->view.name = name;
  device->view.target = targetName(spec.target);
  device->view.specJson = specJson;
  device->view.queues = spec.queues;
  device->view.depth = spec.depth;
  device->view.sizeBytes = spec.size.value_or(0);
  device->onCreated = std::move(done);

  try {
    writeFileAtomically(specPath(name), specJson);
    device->child =
        ChildProcess::spawn({options_.serveBinary, "serve", "--spec", specPath(name).string(), "--status-fd", "3"});
  } catch (const std::exception& e) {
    fs::remove(specPath(name));
    throw ServiceError(ErrorKind::Failed, fmt::format("cannot start the queue daemon of '{}': {}", name, e.what()));
  }
  Managed& ref = *device;
  devices_.emplace(name, std::move(device));
  watchChild(ref);
  ref.deadline = loop_.after(options_.startTimeout, [this, name] {
    auto it = devices_.find(name);
    if (it == devices_.end() || it->second->view.state != DeviceState::Starting) return;
    log::error(
        fmt::format("device {}: queue daemon not ready after {} s; killing it", name, options_.startTimeout.count()),
        {{"DEVICE", name}});
    it->second->timedOut = true;
    it->second->child->signal(SIGKILL);
  });
  log::info(fmt::format("device {}: starting {} queue daemon (pid {})", name, ref.view.target, ref.child->pid()),
            {{"DEVICE", name}, {"TARGET", ref.view.target}});
}

void Manager::watchChild(Managed& device) {
  const std::string name = device.view.name;
  if (device.child->statusFd() >= 0) {
    loop_.watch(device.child->statusFd(), POLLIN, [this, name] { onStatusReadable(name); });
  }
  loop_.watch(device.child->pidfd(), POLLIN, [this, name] { onChildExit(name); });
}

void Manager::onStatusReadable(const std::string& name) {
  Managed& device = *devices_.at(name);
  char buffer[512];
  const ssize_t n = ::read(device.child->statusFd(), buffer, sizeof(buffer));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n > 0) device.statusLine.append(buffer, static_cast<size_t>(n));
  for (size_t end; !device.status && (end = device.statusLine.find('\n')) != std::string::npos;) {
    const ServeStatus status = ServeStatus::parse(std::string_view(device.statusLine).substr(0, end));
    device.statusLine.erase(0, end + 1);
    if (status.addedId) {
      device.addedId = status.addedId;
    } else {
      device.status = status;
    }
  }
  // The last word, end of file (the daemon exited), or garbage that never ends a line.
  if (!device.status && n > 0 && device.statusLine.size() < 4096) return;
  loop_.unwatch(device.child->statusFd());
  device.child->closeStatus();
  if (!device.status && !device.statusLine.empty()) device.status = ServeStatus::parse(device.statusLine);
  if (device.status && device.status->readyId && device.view.state == DeviceState::Starting && !device.timedOut) {
    becameLive(device, *device.status->readyId);
  }
}

void Manager::fillFromKernel(DeviceView& view) {
  const ublk::abi::DevInfo info = control_.getDeviceInfo(view.id);
  view.queues = info.nr_hw_queues;
  view.depth = info.queue_depth;
  view.sizeBytes = control_.getParams(view.id).basic.dev_sectors << 9;
}

void Manager::becameLive(Managed& device, uint32_t id) {
  DeviceView& view = device.view;
  view.id = id;
  try {
    fillFromKernel(view);
  } catch (const std::exception& e) {
    log::warning(fmt::format("device {}: cannot read its geometry back: {}", view.name, e.what()),
                 {{"DEVICE", view.name}});
  }
  view.state = DeviceState::Live;
  loop_.cancel(device.deadline);
  announceName(view);
  writeRecord(device);
  log::info(fmt::format("device {}: live as {} ({} target, {} bytes, {} queues of depth {})", view.name,
                        view.blockDevice(), view.target, view.sizeBytes, view.queues, view.depth),
            {{"DEVICE", view.name}, {"TARGET", view.target}, {"UBLK_DEVICE_ID", std::to_string(id)}});
  if (device.onCreated) std::exchange(device.onCreated, nullptr)(&view, nullptr);
  if (listener_ != nullptr) listener_->deviceAdded(view);
}

// The udev rule (units/90-ublkd.rules) imports this file to make /dev/ublk/by-name/<name>; the
// change event makes udev read it now, since the add event came before the name was known here.
void Manager::announceName(const DeviceView& view) {
  try {
    writeFileAtomically(udevPath(view.id), fmt::format("UBLK_NAME={}\n", view.name));
    std::ofstream uevent(fmt::format("/sys/block/ublkb{}/uevent", view.id));
    uevent << "change" << std::flush;
    if (!uevent) throw std::runtime_error("cannot write change to its uevent file");
  } catch (const std::exception& e) {
    log::warning(fmt::format("device {}: no by-name link: {}", view.name, e.what()), {{"DEVICE", view.name}});
  }
}

void Manager::writeRecord(const Managed& device) {
  const nlohmann::json record{
      {"name", device.view.name}, {"id", device.view.id}, {"pid", device.child->pid()}, {"spec", device.view.specJson}};
  try {
    writeFileAtomically(recordPath(device.view.name), record.dump() + "\n");
  } catch (const std::exception& e) {
    log::warning(fmt::format("device {}: cannot record it for a restarted ublkd: {}", device.view.name, e.what()),
                 {{"DEVICE", device.view.name}});
  }
}

void Manager::removeFiles(const DeviceView& view) {
  std::error_code ignored;
  fs::remove(specPath(view.name), ignored);
  fs::remove(recordPath(view.name), ignored);
  if (view.id != kNoDeviceId) fs::remove(udevPath(view.id), ignored);
}

std::optional<ublk::abi::DevInfo> Manager::kernelDeviceInfo(uint32_t id) {
  try {
    return control_.getDeviceInfo(id);
  } catch (const std::system_error& e) {
    if (e.code().value() == ENODEV || e.code().value() == ENOENT) return std::nullopt;
    throw;
  }
}

// STOP_DEV fails whatever I/O is queued (so no application hangs on a dead daemon), then the
// device is deleted; DEL_DEV_ASYNC (6.9+) does not wait for the last opener to close it.
void Manager::removeKernelDevice(uint32_t id, const std::string& name) {
  try {
    if (!kernelDeviceInfo(id)) return;
    control_.stopDevice(id);
    control_.deleteDeviceWithoutWaiting(id);
  } catch (const std::exception& e) {
    log::error(fmt::format("device {}: cannot remove /dev/ublkb{}: {}", name, id, e.what()), {{"DEVICE", name}});
  }
}

void Manager::onChildExit(const std::string& name) {
  Managed& device = *devices_.at(name);
  loop_.unwatch(device.child->pidfd());
  // What the daemon wrote before it exited is still in the pipe; the pipe ends with it.
  while (device.child->statusFd() >= 0) onStatusReadable(name);
  ChildProcess::Exit exit;
  try {
    exit = device.child->reap();
  } catch (const std::exception& e) {
    log::warning(e.what(), {{"DEVICE", name}});
  }
  DeviceView& view = device.view;
  switch (view.state) {
    case DeviceState::Starting: {
      loop_.cancel(device.deadline);
      const ServiceError error =
          device.timedOut ? ServiceError(ErrorKind::Failed, fmt::format("the queue daemon was not ready within {} s",
                                                                        options_.startTimeout.count()))
          : device.status && !device.status->readyId
              ? ServiceError(device.status->failure, device.status->message)
              : ServiceError(ErrorKind::Failed,
                             fmt::format("the queue daemon {} before the device was ready", exit.describe()));
      // A daemon that failed cleanly removed its device; one that was killed or crashed did not.
      if (device.addedId) removeKernelDevice(*device.addedId, name);
      log::error(fmt::format("device {}: cannot create it: {}", name, error.what()),
                 {{"DEVICE", name}, {"TARGET", view.target}});
      CreateDone done = std::move(device.onCreated);
      removeFiles(view);
      devices_.erase(name);
      if (done) done(nullptr, &error);
      return;
    }
    case DeviceState::Live: {
      view.lastError = fmt::format("queue daemon {}", exit.describe());
      log::error(fmt::format("device {}: {}; removing {} so I/O fails instead of hanging", name, view.lastError,
                             view.blockDevice()),
                 {{"DEVICE", name}, {"TARGET", view.target}});
      removeKernelDevice(view.id, name);
      removeFiles(view);
      view.state = DeviceState::Failed;
      if (listener_ != nullptr) listener_->deviceChanged(view);
      // The kernel may give the id to the next device; the failed record keeps only its name.
      view.id = kNoDeviceId;
      return;
    }
    case DeviceState::Stopping: {
      loop_.cancel(device.deadline);
      if (!exit.clean()) removeKernelDevice(view.id, name);
      finishRemoval(name, "deleted");
      return;
    }
    case DeviceState::Failed:
      return;
  }
}

void Manager::finishRemoval(const std::string& name, const std::string& reason) {
  auto node = devices_.extract(name);
  Managed& device = *node.mapped();
  removeFiles(device.view);
  log::info(fmt::format("device {}: removed ({})", name, reason), {{"DEVICE", name}});
  for (auto& done : device.onDeleted) done(nullptr);
  if (listener_ != nullptr) listener_->deviceRemoved(device.view, reason);
}

void Manager::remove(const std::string& name, DeleteDone done) {
  auto it = devices_.find(name);
  if (it == devices_.end()) throw ServiceError(ErrorKind::NotFound, fmt::format("no device named '{}'", name));
  Managed& device = *it->second;
  DeviceView& view = device.view;
  switch (view.state) {
    case DeviceState::Starting:
      throw ServiceError(ErrorKind::Busy, fmt::format("device '{}' is still starting", name));
    case DeviceState::Stopping:
      device.onDeleted.push_back(std::move(done));  // joins the removal under way
      return;
    case DeviceState::Failed:
      device.onDeleted.push_back(std::move(done));
      finishRemoval(name, "deleted");
      return;
    case DeviceState::Live:
      break;
  }
  // An exclusive open fails while a filesystem, device-mapper or md holds the device.
  const ublk::UniqueFd probe(::open(view.blockDevice().c_str(), O_RDONLY | O_EXCL | O_CLOEXEC | O_NONBLOCK));
  if (!probe && errno == EBUSY) {
    throw ServiceError(ErrorKind::Busy, fmt::format("device '{}' ({}) is in use: mounted or held by another device",
                                                    name, view.blockDevice()));
  }
  device.child->signal(SIGTERM);
  device.onDeleted.push_back(std::move(done));
  view.state = DeviceState::Stopping;
  device.deadline = loop_.after(options_.stopTimeout, [this, name] {
    auto found = devices_.find(name);
    if (found == devices_.end()) return;
    log::error(fmt::format("device {}: queue daemon still running {} s after SIGTERM; killing it", name,
                           options_.stopTimeout.count()),
               {{"DEVICE", name}});
    found->second->child->signal(SIGKILL);
  });
  if (listener_ != nullptr) listener_->deviceChanged(view);
}

std::vector<DeviceView> Manager::list() const {
  std::vector<DeviceView> views;
  for (const auto& [name, device] : devices_) views.push_back(device->view);
  return views;
}

const DeviceView* Manager::find(std::string_view name) const {
  auto it = devices_.find(name);
  return it == devices_.end() ? nullptr : &it->second->view;
}

const DeviceView* Manager::findById(uint32_t id) const {
  for (const auto& [name, device] : devices_) {
    if (device->view.id == id) return &device->view;
  }
  return nullptr;
}

void Manager::adoptPrevious() {
  for (const auto& entry : fs::directory_iterator(options_.runDir / "devices")) {
    const std::string file = entry.path().filename().string();
    if (!file.ends_with(".state.json")) continue;
    std::string name;
    uint32_t id = kNoDeviceId;
    try {
      const nlohmann::json record = nlohmann::json::parse(readTextFile(entry.path()));
      name = record.at("name").get<std::string>();
      id = record.at("id").get<uint32_t>();
      const pid_t pid = record.at("pid").get<pid_t>();
      auto device = std::make_unique<Managed>();
      device->view.name = name;
      device->view.id = id;
      device->view.specJson = record.at("spec").get<std::string>();
      device->view.target = targetName(parseDeviceSpec(device->view.specJson).target);
      // The process must still be the device's server: a pid alone may have been reused.
      const auto info = kernelDeviceInfo(id);
      const bool served = info && info->ublksrv_pid == pid;
      device->child = served ? ChildProcess::adopt(pid) : std::nullopt;
      if (!device->child) {
        log::warning(fmt::format("device {}: its queue daemon (pid {}) is gone; removing /dev/ublkb{}", name, pid, id),
                     {{"DEVICE", name}});
        removeKernelDevice(id, name);
        removeFiles(device->view);
        if (listener_ != nullptr) listener_->deviceRemoved(device->view, "queue daemon gone while ublkd was down");
        continue;
      }
      fillFromKernel(device->view);
      device->view.state = DeviceState::Live;
      Managed& ref = *device;
      devices_.emplace(name, std::move(device));
      watchChild(ref);
      log::info(fmt::format("device {}: adopted {} (queue daemon pid {})", name, ref.view.blockDevice(), pid),
                {{"DEVICE", name}, {"TARGET", ref.view.target}});
      if (listener_ != nullptr) listener_->deviceAdded(ref.view);
    } catch (const std::exception& e) {
      log::error(fmt::format("cannot adopt the device recorded in {}: {}", entry.path().string(), e.what()));
    }
  }
}

void Manager::detachAll() {
  for (auto& [name, device] : devices_) {
    if (device->child) {
      loop_.unwatch(device->child->pidfd());
      if (device->child->statusFd() >= 0) loop_.unwatch(device->child->statusFd());
    }
    if (device->view.state == DeviceState::Starting) {
      device->child->signal(SIGTERM);  // never recorded, so no later ublkd could adopt it
      const ServiceError error(ErrorKind::Failed, "ublkd is shutting down");
      if (device->onCreated) std::exchange(device->onCreated, nullptr)(nullptr, &error);
    }
    for (auto& done : device->onDeleted) {
      const ServiceError error(ErrorKind::Failed, "ublkd is shutting down");
      done(&error);
    }
    device->onDeleted.clear();
  }
}

}  // namespace ublkd
