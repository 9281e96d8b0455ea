// Manager: creating, supervising, recovering and removing devices (adoption of an earlier
// ublkd's devices is in manager_adoption.cpp, their files in device_records.cpp).
#include "manager.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include <fmt/format.h>

#include "abi.h"
#include "backing_store.h"
#include "crash_policy.h"
#include "data_path.h"
#include "device_identity.h"
#include "device_spec.h"
#include "log.h"
#include "managed_device.h"
#include "process_info.h"
#include "serve_status.h"
#include "text_file.h"
#include "throw_errno.h"
#include "unique_fd.h"

namespace ublkd {

namespace fs = std::filesystem;

namespace {

// Deadlines of ublkd's own control commands: STOP_DEV waits for requests in flight, which a
// daemon that is gone no longer holds; DEL_DEV (kernels before 6.9) waits for the last opener.
constexpr std::chrono::milliseconds kStopDeadline{10'000};
constexpr std::chrono::milliseconds kDeleteDeadline{10'000};
// How long an open of a backing store, or the exclusive-open probe of a block device, may take.
constexpr std::chrono::milliseconds kFilesystemDeadline{10'000};
// How often an overdue daemon asleep in the kernel is looked at again.
constexpr std::chrono::seconds kStuckRecheck{5};
// An overdue daemon is killed only once this many looks, kAwakeLookGap apart, found no thread of
// it asleep in the kernel: a kernel thread that waits in a loop of short sleeps (msleep, polling
// for the requests a hung backend holds) is out of D state for moments between them, and under
// emulation for a good share of the time.
constexpr unsigned kAwakeLooks = 10;
constexpr std::chrono::milliseconds kAwakeLookGap{200};

}  // namespace

BackingStore reopenBacking(const std::string& specJson, FileIdentity expected) {
  const DeviceSpec spec = parseDeviceSpec(specJson);
  BackingStore store = BackingStore::open(spec.path, spec.readOnly);
  if (store.identity() != expected) {
    throw std::runtime_error(
        fmt::format("{} now names another file ({}, device {} inode {}; the device was created "
                    "on device {} inode {}); not serving it",
                    spec.path, store.resolvedPath(), store.identity().device, store.identity().inode, expected.device,
                    expected.inode));
  }
  return store;
}

std::string_view stateName(DeviceState state) {
  switch (state) {
    case DeviceState::Starting:
      return "starting";
    case DeviceState::Live:
      return "live";
    case DeviceState::Recovering:
      return "recovering";
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
  if (const std::string problem = deviceNameProblem(name); !problem.empty()) {
    throw ServiceError(ErrorKind::InvalidSpec, fmt::format("device name '{}': {}", name, problem));
  }
}

Manager::Manager(EventLoop& loop, ublk::ControlDevice& control, Options options)
    : loop_(loop),
      control_(control),
      options_(std::move(options)),
      records_(options_.runDir),
      commands_(loop, asyncControl_),
      offload_(loop) {}

Manager::~Manager() = default;

Manager::Managed* Manager::lookup(const std::string& name, const Managed* expected) {
  auto it = devices_.find(name);
  return it != devices_.end() && it->second.get() == expected ? it->second.get() : nullptr;
}

void Manager::create(const std::string& name, const std::string& specJson, uid_t owner, CreateDone done) {
  validateDeviceName(name);
  if (devices_.contains(name)) {
    throw ServiceError(ErrorKind::Exists, fmt::format("a device named '{}' already exists", name));
  }
  DeviceSpec spec;
  try {
    spec = parseDeviceSpec(specJson);
  } catch (const SpecError& e) {
    throw ServiceError(ErrorKind::InvalidSpec, fmt::format("spec of '{}': {}", name, e.what()));
  }
  if (spec.recovery == Recovery::FailIo && (options_.kernelFeatures & ublk::abi::feature::kUserRecoveryFailIo) == 0) {
    throw ServiceError(ErrorKind::KernelUnsupported,
                       fmt::format("spec of '{}': /recovery: fail-io needs a kernel with USER_RECOVERY_FAIL_IO "
                                   "(6.13 or newer)",
                                   name));
  }

  auto device = std::make_unique<Managed>(options_.crash);
  device->view.name = name;
  device->view.target = toString(spec.target);
  device->view.specJson = specJson;
  device->view.queues = spec.queues;
  device->view.depth = spec.depth;
  device->view.sizeBytes = spec.size.value_or(0);
  device->view.owner = owner;
  device->recovery = spec.recovery;
  device->onCreated = std::move(done);
  // The name is taken from here on, while the backing store is opened.
  Managed& ref = *devices_.emplace(name, std::move(device)).first->second;
  if (spec.target != TargetKind::Loop) {
    try {
      startCreated(ref);
    } catch (...) {
      devices_.erase(name);
      throw;
    }
    if (listener_ != nullptr) listener_->deviceAdded(ref.view);
    return;
  }
  // A path on a hung filesystem blocks open(); that must not block the loop.
  const Managed* which = &ref;
  offload_.run(
      [this, name, which, path = spec.path, readOnly = spec.readOnly]() -> Offload::Callback {
        try {
          auto store = std::make_shared<BackingStore>(BackingStore::open(path, readOnly));
          return [this, name, which, store] {
            Managed* device = lookup(name, which);
            if (device == nullptr) return;
            device->view.backing = store->resolvedPath();
            device->backingIdentity = store->identity();
            device->backing = std::move(*store);
            try {
              startCreated(*device);
            } catch (const ServiceError& e) {
              createFailed(name, which, e);
            }
          };
        } catch (const SpecError& e) {
          const ServiceError error(ErrorKind::InvalidSpec, fmt::format("spec of '{}': {}", name, e.what()));
          return [this, name, which, error] { createFailed(name, which, error); };
        } catch (const std::exception& e) {
          const ServiceError error(ErrorKind::Failed, fmt::format("spec of '{}': /path: {}", name, e.what()));
          return [this, name, which, error] { createFailed(name, which, error); };
        }
      },
      kFilesystemDeadline,
      [this, name, which, path = spec.path] {
        createFailed(name, which,
                     ServiceError(ErrorKind::Timeout,
                                  fmt::format("spec of '{}': /path: opening {} did not finish within {} s: its "
                                              "filesystem or device is not answering; nothing was created",
                                              name, path, kFilesystemDeadline.count() / 1000)));
      });
  if (listener_ != nullptr) listener_->deviceAdded(ref.view);
}

void Manager::createFailed(const std::string& name, const Managed* which, const ServiceError& error) {
  Managed* device = lookup(name, which);
  if (device == nullptr) return;
  forgetStarting(*device, error);
}

// A create that failed: the name is free again, and the caller and the listener hear why.
void Manager::forgetStarting(Managed& device, const ServiceError& error) {
  const std::string name = device.view.name;
  log::error(fmt::format("device {}: cannot create it: {}", name, error.what()), {{"DEVICE", name}});
  CreateDone done = std::move(device.onCreated);
  removeFiles(device.view);
  const DeviceView view = device.view;
  devices_.erase(name);
  if (done) done(nullptr, &error);
  if (listener_ != nullptr) listener_->deviceRemoved(view, error.what());
}

// Records the spec and the device (with its cookie), then starts its queue daemon. Throws
// ServiceError, with nothing left behind but the reserved entry (the caller drops it).
void Manager::startCreated(Managed& ref) {
  const std::string name = ref.view.name;
  try {
    records_.writeSpec(name, ref.view.specJson);
  } catch (const std::exception& e) {
    throw ServiceError(ErrorKind::Failed, fmt::format("cannot record the spec of '{}': {}", name, e.what()));
  }
  // The record with the cookie comes first: should ublkd die after ADD_DEV, the next one knows
  // the kernel device is ours, and removes it.
  try {
    ref.cookie = newCookie();
    records_.write(recordOf(ref));
  } catch (const std::exception& e) {
    records_.remove(name, kNoDeviceId);
    throw ServiceError(ErrorKind::Failed, fmt::format("cannot record the device '{}': {}", name, e.what()));
  }
  try {
    spawnServe(ref, std::nullopt);
  } catch (const std::exception& e) {
    removeFiles(ref.view);
    throw ServiceError(ErrorKind::Failed, fmt::format("cannot start the queue daemon of '{}': {}", name, e.what()));
  }
  log::info(fmt::format("device {}: starting {} queue daemon (pid {})", name, ref.view.target, ref.child->pid()),
            {{"DEVICE", name}, {"TARGET", ref.view.target}});
  // The caller hears back even if the daemon, killed at startTimeout, cannot die.
  const Managed* which = &ref;
  loop_.after(options_.startTimeout + options_.killGrace, [this, name, which] {
    Managed* device = lookup(name, which);
    if (device == nullptr || device->view.state != DeviceState::Starting || !device->onCreated) return;
    const ServiceError error(ErrorKind::Timeout,
                             fmt::format("device '{}' did not come up: {}", name, stuckText(*device)));
    std::exchange(device->onCreated, nullptr)(nullptr, &error);
  });
}

// Starts `ublkd serve` for the device (to create it, or to recover device recoverId), watches it,
// and kills it if it is not ready in time.
void Manager::spawnServe(Managed& device, std::optional<uint32_t> recoverId) {
  const std::string name = device.view.name;
  // argv[0] starting with '@' keeps systemd-shutdown's final kill off the daemon (systemd's "root
  // storage daemon" convention): a filesystem still mounted on the device is unmounted, and its
  // data written, while the daemon still serves it.
  std::vector<std::string> argv{"@" + fs::path(options_.serveBinary).filename().string(), "serve", "--spec",
                                records_.specPath(name).string()};
  if (recoverId) {
    argv.push_back("--recover");
    argv.push_back(std::to_string(*recoverId));
  }
  argv.push_back("--status-fd");
  argv.push_back("3");
  if (device.cookie != 0) {
    argv.push_back("--cookie");
    argv.push_back(std::to_string(device.cookie));
  }
  if (device.backingIdentity && !device.backing) {
    throw std::logic_error("the backing store is not open (startRecovery opens it again first)");
  }
  if (device.backing) {
    argv.push_back("--backing-fd");
    argv.push_back(std::to_string(ChildProcess::kPassedFd));
  }
  // The same file for every queue daemon of the device, so its counters outlive each of them.
  // Without it the device is served all the same, uncounted.
  const ublk::UniqueFd stats(::open(records_.statsPath(name).c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (stats) {
    argv.push_back("--stats-fd");
    argv.push_back(std::to_string(ChildProcess::kPassedFd + 1));
  } else {
    log::warning(fmt::format("device {}: no statistics: cannot open {}: {}", name, records_.statsPath(name).string(),
                             std::strerror(errno)),
                 {{"DEVICE", name}});
  }
  device.child =
      ChildProcess::spawn(options_.serveBinary, argv, {device.backing ? device.backing->fd() : -1, stats.get()});
  device.statusLine.clear();
  device.status.reset();
  device.timedOut = false;
  watchChild(device);
  // Cancelled once the device is live (becameLive, recovered).
  device.deadline = killAfter(device, options_.startTimeout, "to get the device live");
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
  if (device.status && device.status->readyId && !device.timedOut) {
    if (device.view.state == DeviceState::Starting) becameLive(device, *device.status->readyId);
    if (device.view.state == DeviceState::Recovering) recovered(device);
  }
}

void Manager::becameLive(Managed& device, uint32_t id) {
  DeviceView& view = device.view;
  view.id = id;
  if (device.status && device.status->geometry) {
    const ServedGeometry& granted = *device.status->geometry;
    device.kernelFlags = granted.flags;
    view.dataPath = std::string(ublk::dataPathName(ublk::dataPathOf(granted.flags)));
    view.queues = granted.queues;
    view.depth = granted.depth;
    view.sizeBytes = granted.bytes;
  } else {
    log::warning(fmt::format("device {}: its queue daemon did not say what the kernel granted; showing the spec's "
                             "geometry",
                             view.name),
                 {{"DEVICE", view.name}});
  }
  view.state = DeviceState::Live;
  device.crash.live(Managed::Clock::now());
  loop_.cancel(device.deadline);
  announceName(view);
  writeRecord(device);
  log::info(fmt::format("device {}: live as {} ({} target, {} bytes, {} queues of depth {})", view.name,
                        view.blockDevice(), view.target, view.sizeBytes, view.queues, view.depth),
            {{"DEVICE", view.name}, {"TARGET", view.target}, {"UBLK_DEVICE_ID", std::to_string(id)}});
  if (device.onCreated) std::exchange(device.onCreated, nullptr)(&view, nullptr);
  if (listener_ != nullptr) listener_->deviceChanged(view);
}

void Manager::recovered(Managed& device) {
  DeviceView& view = device.view;
  loop_.cancel(device.deadline);
  view.state = DeviceState::Live;
  ++view.restartCount;
  device.crash.live(Managed::Clock::now());
  writeRecord(device);
  log::info(fmt::format("device {}: recovered {}: queue daemon pid {} serves it (restart {})", view.name,
                        view.blockDevice(), device.child->pid(), view.restartCount),
            {{"DEVICE", view.name}, {"UBLK_DEVICE_ID", std::to_string(view.id)}});
  if (listener_ != nullptr) listener_->deviceChanged(view);
  for (auto& done : std::exchange(device.onRestarted, {})) done(nullptr);
}

// The udev rule (units/90-ublkd.rules) imports this file to make /dev/ublk/by-name/<name>; the
// change event makes udev read it now, since the add event came before the name was known here.
void Manager::announceName(const DeviceView& view) {
  try {
    records_.announceName(view.id, view.name);
  } catch (const std::exception& e) {
    log::warning(fmt::format("device {}: no by-name link: {}", view.name, e.what()), {{"DEVICE", view.name}});
  }
}

DeviceRecord Manager::recordOf(const Managed& device) const {
  return {.name = device.view.name,
          .state = std::string(stateName(device.view.state)),
          .cookie = device.cookie,
          .id = device.view.id,
          .pid = device.child ? device.child->pid() : 0,
          .spec = device.view.specJson,
          .restarts = device.view.restartCount,
          .sizeBytes = device.view.sizeBytes,
          .lastExitReason = device.view.lastExitReason,
          .reason = device.view.lastError,
          .owner = device.view.owner,
          .backingPath = device.view.backing,
          .backing = device.backingIdentity};
}

void Manager::writeRecord(const Managed& device) {
  try {
    records_.write(recordOf(device));
  } catch (const std::exception& e) {
    log::warning(fmt::format("device {}: cannot record it for a restarted ublkd: {}", device.view.name, e.what()),
                 {{"DEVICE", device.view.name}});
  }
}

void Manager::removeFiles(const DeviceView& view) { records_.remove(view.name, view.id); }

namespace {

// Another server's device at a reused id, said once in the journal.
bool foreignDevice(const ublk::abi::DevInfo& info, uint64_t cookie, const std::string& name) {
  if (cookie == 0 || info.ublksrv_flags == cookie) return false;
  log::warning(fmt::format("device {}: /dev/ublkb{} is not ours any more (cookie {}, ours {}): another server's "
                           "device at a reused id; leaving it alone",
                           name, info.dev_id, cookieText(info.ublksrv_flags), cookieText(cookie)),
               {{"DEVICE", name}});
  return true;
}

}  // namespace

void Manager::checkKernelDevice(uint32_t id, uint64_t cookie, const std::string& name, std::function<void(bool)> done) {
  commands_.deviceInfo(
      id, [name, cookie, done = std::move(done)](std::optional<ublk::abi::DevInfo> info, const std::string& error) {
        if (!error.empty()) {
          log::warning(fmt::format("device {}: cannot tell whether its kernel device is still there: {}", name, error),
                       {{"DEVICE", name}});
          return done(true);  // unknown: the caller's cleanup is the safe side
        }
        done(info && !foreignDevice(*info, cookie, name) &&
             static_cast<ublk::abi::DevState>(info->state) != ublk::abi::DevState::Dead);
      });
}

// SIGKILLs the device's current queue daemon if it is still there after `timeout`, marking it
// timed out (so a late "ready" does not count).
EventLoop::TimerId Manager::killAfter(Managed& device, std::chrono::seconds timeout, std::string_view what) {
  const std::string name = device.view.name;
  const pid_t pid = device.child->pid();
  device.awakeLooks = 0;
  device.stuckLogged = false;
  return loop_.after(timeout,
                     [this, name, pid, timeout, what = std::string(what)] { killOverdue(name, pid, timeout, what); });
}

// A daemon asleep in the kernel (a STOP_DEV or START_DEV waiting for requests on a backing store
// that does not answer) is not killed: the kill could not take it, and once it did, the requests
// it holds would be stranded (on 6.12, a STOP_DEV in the daemon's io-wq then waits for them
// forever, and the daemon with it). It is looked at again until it is out, then killed.
void Manager::killOverdue(const std::string& name, pid_t pid, std::chrono::seconds timeout, const std::string& what) {
  auto it = devices_.find(name);
  if (it == devices_.end() || !it->second->child || it->second->child->pid() != pid) return;
  Managed& device = *it->second;
  device.timedOut = true;  // a late "ready" does not count
  const auto lookAgain = [this, name, pid, timeout, what](auto after) {
    return loop_.after(after, [this, name, pid, timeout, what] { killOverdue(name, pid, timeout, what); });
  };
  if (const std::string stuck = describeStuckThreads(pid); !stuck.empty()) {
    if (!std::exchange(device.stuckLogged, true)) {
      log::error(fmt::format("device {}: queue daemon (pid {}) failed {} within {} s and waits in the kernel ({}); "
                             "not killing it while it does",
                             name, pid, what, timeout.count(), stuck),
                 {{"DEVICE", name}});
    }
    device.awakeLooks = 0;
    device.deadline = lookAgain(kStuckRecheck);
    return;
  }
  if (++device.awakeLooks < kAwakeLooks) {
    device.deadline = lookAgain(kAwakeLookGap);
    return;
  }
  log::error(fmt::format("device {}: queue daemon (pid {}) failed {} within {} s; killing it", name, pid, what,
                         timeout.count()),
             {{"DEVICE", name}});
  device.child->signal(SIGKILL);
}

// STOP_DEV fails whatever I/O is queued (so no application hangs on a dead daemon), then the
// device is deleted; DEL_DEV_ASYNC (6.9+) does not wait for the last opener to close it.
void Manager::removeKernelDevice(uint32_t id, const std::string& name, uint64_t cookie, Then then) {
  commands_.deviceInfo(id, [this, id, name, cookie, then = std::move(then)](std::optional<ublk::abi::DevInfo> info,
                                                                            const std::string& error) {
    if (!error.empty()) {
      log::error(fmt::format("device {}: cannot remove /dev/ublkb{}: {}", name, id, error), {{"DEVICE", name}});
    }
    if (!info || foreignDevice(*info, cookie, name)) {
      if (then) then();
      return;
    }
    if (static_cast<ublk::abi::DevState>(info->state) == ublk::abi::DevState::Dead) {
      deleteKernelDevice(id, name, then);  // stopped already
      return;
    }
    commands_.run(ublk::ControlCommand::stopDevice(id), kStopDeadline,
                  [this, id, name, then](int result, std::span<const std::byte>) {
                    if (result < 0 && result != -ENODEV) {
                      log::error(fmt::format("device {}: cannot remove /dev/ublkb{}: {}", name, id,
                                             commandError(ublk::ControlCommand::stopDevice(id), result, kStopDeadline)),
                                 {{"DEVICE", name}});
                      if (then) then();
                      return;
                    }
                    deleteKernelDevice(id, name, then);
                  });
  });
}

void Manager::deleteKernelDevice(uint32_t id, const std::string& name, Then then) {
  auto report = [id, name, then](const ublk::ControlCommand& command, int result) {
    if (result < 0 && result != -ENODEV) {
      log::error(fmt::format("device {}: cannot delete /dev/ublkb{}: {}", name, id,
                             commandError(command, result, kDeleteDeadline)),
                 {{"DEVICE", name}});
    }
    if (then) then();
  };
  commands_.run(ublk::ControlCommand::deleteDeviceAsync(id), kDeleteDeadline,
                [this, id, report](int result, std::span<const std::byte>) {
                  if (result != -EOPNOTSUPP && result != -EINVAL) {
                    return report(ublk::ControlCommand::deleteDeviceAsync(id), result);
                  }
                  // Kernels before 6.9 have only DEL_DEV, which waits for the last opener.
                  commands_.run(ublk::ControlCommand::deleteDevice(id), kDeleteDeadline,
                                [id, report](int again, std::span<const std::byte>) {
                                  report(ublk::ControlCommand::deleteDevice(id), again);
                                });
                });
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
      device.child.reset();
      auto forget = [this, name, which = &device, error] {
        if (Managed* gone = lookup(name, which)) forgetStarting(*gone, error);
      };
      // A daemon that failed cleanly removed its device; one that was killed or crashed did not.
      if (device.addedId) {
        removeKernelDevice(*device.addedId, name, device.cookie, forget);
      } else {
        forget();
      }
      return;
    }
    case DeviceState::Live: {
      loop_.cancel(device.deadline);  // a handover's
      // An adopted daemon's exit status is unknown; its handover is taken at its word.
      const bool planned = std::exchange(device.handingOver, false) && (exit.clean() || !exit.known);
      view.lastExitReason = planned ? "handed over" : fmt::format("queue daemon {}", exit.describe());
      device.child.reset();
      afterDeath(device, planned);
      return;
    }
    case DeviceState::Recovering: {
      loop_.cancel(device.deadline);
      const std::string why = device.timedOut ? fmt::format("not ready within {} s", options_.startTimeout.count())
                              : device.status && !device.status->readyId ? device.status->message
                                                                         : exit.describe();
      view.lastExitReason = fmt::format("recovering queue daemon {}", why);
      device.child.reset();
      afterDeath(device, false);
      return;
    }
    case DeviceState::Stopping: {
      loop_.cancel(device.deadline);
      device.child.reset();
      // A daemon that stopped cleanly deleted the device (then there is nothing left to do),
      // unless it handed it over instead.
      removeThenFinish(device, "deleted");
      return;
    }
    case DeviceState::Failed:
      return;
  }
}

// The queue daemon is gone (view.lastExitReason says how; `planned` for a handover): recover the
// device, or give up on it.
void Manager::afterDeath(Managed& device, bool planned) {
  DeviceView& view = device.view;
  const std::string name = view.name;
  const CrashPolicy::Verdict verdict = planned ? CrashPolicy::Verdict{} : device.crash.died(Managed::Clock::now());

  if (!device.recoverable()) {
    log::error(fmt::format("device {}: {}; removing {} so I/O fails instead of hanging (recovery {})", name,
                           view.lastExitReason, view.blockDevice(), toString(device.recovery)),
               {{"DEVICE", name}, {"TARGET", view.target}});
    view.state = DeviceState::Stopping;  // a DeleteDevice meanwhile joins this removal
    removeThenFinish(device, view.lastExitReason);
    return;
  }
  checkKernelDevice(view.id, device.cookie, name, [this, name, which = &device, verdict](bool inUse) {
    Managed* still = lookup(name, which);
    // Meanwhile deleted, or its removal under way.
    if (still == nullptr || still->child || still->view.state == DeviceState::Stopping ||
        still->view.state == DeviceState::Failed)
      return;
    afterDeathChecked(*still, verdict, inUse);
  });
}

void Manager::afterDeathChecked(Managed& device, const CrashPolicy::Verdict& verdict, bool kernelDeviceInUse) {
  DeviceView& view = device.view;
  const std::string name = view.name;
  if (!kernelDeviceInUse) {
    // Stopped and deleted (by its daemon on SIGTERM, or by hand): nothing is left to recover,
    // and the id may soon be another device's.
    log::warning(fmt::format("device {}: {}, and {} is gone", name, view.lastExitReason, view.blockDevice()),
                 {{"DEVICE", name}});
    view.state = DeviceState::Stopping;
    removeThenFinish(device, fmt::format("{}; its kernel device was removed", view.lastExitReason));
    return;
  }
  if (verdict.giveUp) {
    failDevice(device, fmt::format("{}; the last: {}", verdict.reason, view.lastExitReason));
    return;
  }
  const std::string when = verdict.delay.count() == 0
                               ? ""
                               : fmt::format(" in {:.2f} s", std::chrono::duration<double>(verdict.delay).count());
  log::warning(fmt::format("device {}: {}; recovering {}{}", name, view.lastExitReason, view.blockDevice(), when),
               {{"DEVICE", name}, {"TARGET", view.target}, {"UBLK_DEVICE_ID", std::to_string(view.id)}});
  view.state = DeviceState::Recovering;
  writeRecord(device);
  if (listener_ != nullptr) listener_->deviceChanged(view);
  if (verdict.delay.count() == 0) {
    startRecovery(name);
  } else {
    device.retry = loop_.after(verdict.delay, [this, name] { startRecovery(name); });
  }
}

void Manager::startRecovery(const std::string& name) {
  auto it = devices_.find(name);
  if (it == devices_.end() || it->second->view.state != DeviceState::Recovering) return;
  Managed& device = *it->second;
  device.retry = 0;
  if (device.backingIdentity && !device.backing) {
    reopenThenRecover(device);
    return;
  }
  try {
    spawnServe(device, device.view.id);
  } catch (const std::exception& e) {
    failDevice(device, fmt::format("cannot start a recovering queue daemon: {}", e.what()));
    return;
  }
  writeRecord(device);
  log::info(fmt::format("device {}: recovering queue daemon pid {} started", name, device.child->pid()),
            {{"DEVICE", name}, {"UBLK_DEVICE_ID", std::to_string(device.view.id)}});
}

// The backing store's open file went with an earlier ublkd (a queue daemon that died while ublkd
// was down): the path is opened again, off the loop, and served only if it is the same file.
void Manager::reopenThenRecover(Managed& device) {
  const std::string name = device.view.name;
  const Managed* which = &device;
  auto stillRecovering = [this, name, which]() -> Managed* {
    Managed* still = lookup(name, which);
    return still != nullptr && still->view.state == DeviceState::Recovering && !still->child ? still : nullptr;
  };
  offload_.run(
      [this, name, stillRecovering, spec = device.view.specJson,
       identity = *device.backingIdentity]() -> Offload::Callback {
        try {
          auto store = std::make_shared<BackingStore>(reopenBacking(spec, identity));
          return [this, name, stillRecovering, store] {
            if (Managed* device = stillRecovering()) {
              device->backing = std::move(*store);
              startRecovery(name);
            }
          };
        } catch (const std::exception& e) {
          return [this, stillRecovering, why = std::string(e.what())] {
            if (Managed* device = stillRecovering()) failDevice(*device, why);
          };
        }
      },
      kFilesystemDeadline,
      [this, stillRecovering] {
        if (Managed* device = stillRecovering()) {
          failDevice(*device, fmt::format("opening {} again did not finish within {} s: its filesystem or device "
                                          "is not answering",
                                          device->view.backing, kFilesystemDeadline.count() / 1000));
        }
      });
}

// Gives up: the kernel device goes (queued I/O fails rather than waiting forever), the name stays
// in the failed state until it is deleted.
void Manager::failDevice(Managed& device, const std::string& why) {
  DeviceView& view = device.view;
  view.lastError = why;
  log::error(fmt::format("device {}: failed: {}; removing {}", view.name, why, view.blockDevice()),
             {{"DEVICE", view.name}, {"TARGET", view.target}});
  loop_.cancel(device.deadline);
  loop_.cancel(device.retry);
  removeKernelDevice(view.id, view.name, device.cookie);  // in the background; it logs what fails
  removeFiles(view);
  view.state = DeviceState::Failed;
  // The name stays failed, with its reason, across a ublkd restart until it is deleted.
  try {
    DeviceRecord failed;
    failed.name = view.name;
    failed.state = "failed";
    failed.spec = view.specJson;
    failed.reason = why;
    failed.owner = view.owner;
    records_.write(failed);
  } catch (const std::exception& e) {
    log::warning(fmt::format("device {}: cannot record its failure: {}", view.name, e.what()), {{"DEVICE", view.name}});
  }
  // The kernel may give the id to the next device; the failed record keeps only its name.
  view.id = kNoDeviceId;
  if (listener_ != nullptr) listener_->deviceChanged(view);
  const ServiceError error(ErrorKind::Failed, fmt::format("device '{}' failed: {}", view.name, why));
  for (auto& done : std::exchange(device.onRestarted, {})) done(&error);
}

// Removes the kernel device, then forgets the device with `reason` (unless it went meanwhile).
void Manager::removeThenFinish(Managed& device, std::string reason) {
  const std::string name = device.view.name;
  removeKernelDevice(device.view.id, name, device.cookie, [this, name, which = &device, reason = std::move(reason)] {
    if (lookup(name, which) != nullptr) finishRemoval(name, reason);
  });
}

// Every DeleteDevice caller waiting on the device hears `error`; the device stays.
void Manager::answerDeleters(Managed& device, const ServiceError& error) {
  for (auto& [waiter, done] : std::exchange(device.onDeleted, {})) done(&error);
}

void Manager::finishRemoval(const std::string& name, const std::string& reason) {
  auto node = devices_.extract(name);
  Managed& device = *node.mapped();
  loop_.cancel(device.retry);
  removeFiles(device.view);
  log::info(fmt::format("device {}: removed ({})", name, reason), {{"DEVICE", name}});
  for (auto& [waiter, done] : device.onDeleted) done(nullptr);
  const ServiceError error(ErrorKind::Failed, fmt::format("device '{}' was removed: {}", name, reason));
  for (auto& done : device.onRestarted) done(&error);
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
      awaitRemoval(device, std::move(done));  // joins the removal under way
      return;
    case DeviceState::Failed:
      awaitRemoval(device, std::move(done));
      finishRemoval(name, "deleted");
      return;
    case DeviceState::Live:
    case DeviceState::Recovering:
      break;
  }
  if (device.handingOver) {
    throw ServiceError(ErrorKind::Busy, fmt::format("device '{}' is being restarted; delete it once it is live", name));
  }
  awaitRemoval(device, std::move(done));
  if (std::exchange(device.probing, true)) return;  // joins the check under way
  // An exclusive open fails while a filesystem, device-mapper or md holds the device. Off the
  // loop: the last close of a block device writes back its dirty pages, which a hung device
  // never takes.
  const std::string node = view.blockDevice();
  const Managed* which = &device;
  offload_.run(
      [this, name, which, node]() -> Offload::Callback {
        bool held = false;
        {
          const ublk::UniqueFd probe(::open(node.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC | O_NONBLOCK));
          held = !probe && errno == EBUSY;
        }
        return [this, name, which, held] { probed(name, which, held); };
      },
      kFilesystemDeadline,
      [this, name, which, node] {
        Managed* stuck = lookup(name, which);
        if (stuck == nullptr) return;
        stuck->probing = false;
        const ServiceError error(ErrorKind::Timeout,
                                 fmt::format("device '{}': cannot tell whether {} is in use: opening it did not "
                                             "finish within {} s (the device is not answering); not deleting it",
                                             name, node, kFilesystemDeadline.count() / 1000));
        answerDeleters(*stuck, error);
      });
}

// Each DeleteDevice caller is answered once: by the removal, or with Timeout at its deadline.
void Manager::awaitRemoval(Managed& device, DeleteDone done) {
  const uint64_t waiter = nextWaiter_++;
  device.onDeleted.emplace(waiter, std::move(done));
  const std::string name = device.view.name;
  loop_.after(options_.stopTimeout + options_.killGrace, [this, name, which = &device, waiter] {
    Managed* still = lookup(name, which);
    if (still == nullptr) return;
    auto node = still->onDeleted.extract(waiter);
    if (node.empty()) return;
    const ServiceError error(ErrorKind::Timeout,
                             fmt::format("device '{}' is not removed yet: {}; it stays 'stopping' and goes once its "
                                         "queue daemon exits",
                                         name, stuckText(*still)));
    node.mapped()(&error);
  });
}

void Manager::probed(const std::string& name, const Managed* which, bool held) {
  Managed* device = lookup(name, which);
  if (device == nullptr) return;
  device->probing = false;
  DeviceView& view = device->view;
  if (view.state != DeviceState::Live && view.state != DeviceState::Recovering) {
    if (view.state == DeviceState::Failed) finishRemoval(name, "deleted");
    return;  // Stopping: that removal answers every caller
  }
  if (held) {
    const ServiceError error(ErrorKind::Busy, fmt::format("device '{}' ({}) is in use: mounted or held by another "
                                                          "device",
                                                          name, view.blockDevice()));
    answerDeleters(*device, error);
    return;
  }
  proceedRemoval(*device);
}

void Manager::proceedRemoval(Managed& device) {
  DeviceView& view = device.view;
  const std::string name = view.name;
  if (!device.child) {
    // A recovery waiting out its backoff: no daemon to stop, only the kernel device.
    loop_.cancel(device.retry);
    view.state = DeviceState::Stopping;
    if (listener_ != nullptr) listener_->deviceChanged(view);
    removeThenFinish(device, "deleted");
    return;
  }
  // A live daemon stops and deletes the device itself; a recovering one may be waiting in the
  // kernel for the device, so it is killed and the device removed here.
  device.child->signal(view.state == DeviceState::Recovering ? SIGKILL : SIGTERM);
  view.state = DeviceState::Stopping;
  loop_.cancel(device.deadline);
  device.deadline = killAfter(device, options_.stopTimeout, "to stop");
  if (listener_ != nullptr) listener_->deviceChanged(view);
}

// Why a device's daemon has not answered: what it is doing in the kernel.
std::string Manager::stuckText(const Managed& device) const {
  if (!device.child) return "its kernel device has not answered STOP_DEV or DEL_DEV";
  const pid_t pid = device.child->pid();
  const std::string threads = describeStuckThreads(pid);
  return fmt::format(
      "its queue daemon (pid {}) has not exited{}: it waits in the kernel, most likely on a "
      "backing store that does not answer",
      pid, threads.empty() ? "" : fmt::format(" ({})", threads));
}

void Manager::restart(const std::string& name, RestartDone done) {
  auto it = devices_.find(name);
  if (it == devices_.end()) throw ServiceError(ErrorKind::NotFound, fmt::format("no device named '{}'", name));
  Managed& device = *it->second;
  if (device.view.state != DeviceState::Live || device.handingOver || device.resizing) {
    throw ServiceError(ErrorKind::Busy, fmt::format("device '{}' is {}; only a live device can be restarted", name,
                                                    device.handingOver ? "restarting"
                                                    : device.resizing  ? "being resized"
                                                                       : stateName(device.view.state)));
  }
  if (device.recovery != Recovery::Reissue || !device.recoverable()) {
    throw ServiceError(ErrorKind::Failed,
                       fmt::format("device '{}' has recovery '{}': only with 'reissue' does I/O wait for the next "
                                   "queue daemon instead of failing",
                                   name, toString(device.recovery)));
  }
  if ((device.kernelFlags & ublk::abi::feature::kQuiesce) == 0) {
    throw ServiceError(ErrorKind::KernelUnsupported,
                       fmt::format("device '{}' has no UBLK_F_QUIESCE (Linux 6.16 or newer, at creation): a planned "
                                   "restart cannot quiesce it; its queue daemon is recovered only after a crash",
                                   name));
  }
  device.child->signal(SIGUSR2);
  device.handingOver = true;
  device.onRestarted.push_back(std::move(done));
  // A daemon stuck handing over is killed; recovery then follows as after a crash.
  device.deadline = killAfter(device, options_.stopTimeout, "to hand the device over");
  log::info(fmt::format("device {}: planned restart: queue daemon pid {} hands it over", name, device.child->pid()),
            {{"DEVICE", name}});
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

void Manager::detachAll() {
  for (auto& [name, device] : devices_) {
    if (device->child) {
      loop_.unwatch(device->child->pidfd());
      if (device->child->statusFd() >= 0) loop_.unwatch(device->child->statusFd());
    }
    loop_.cancel(device->retry);  // the next ublkd recovers the device instead
    const ServiceError error(ErrorKind::Failed, "ublkd is shutting down");
    if (device->view.state == DeviceState::Starting) {
      if (device->child) device->child->signal(SIGTERM);  // never live, so no later ublkd adopts it
      if (device->onCreated) std::exchange(device->onCreated, nullptr)(nullptr, &error);
    }
    answerDeleters(*device, error);
    for (auto& done : std::exchange(device->onRestarted, {})) done(&error);
  }
}

}  // namespace ublkd
