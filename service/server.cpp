// Server: the device lifecycle of `ublkd serve`:
//   created:   ADD_DEV -> SET_PARAMS -> queue threads FETCH -> START_DEV -> serve -> STOP_DEV -> DEL_DEV
//   recovered: wait QUIESCED -> START_USER_RECOVERY -> queue threads FETCH -> END_USER_RECOVERY -> serve
//   handover:  serve -> QUIESCE_DEV -> queue threads see ABORT -> exit, the device left QUIESCED
#include "server.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "char_device.h"
#include "control_device.h"
#include "data_path.h"
#include "queue.h"
#include "service_error.h"
#include "stats_writer.h"
#include "target.h"

namespace ublkd {
namespace {

namespace abi = ublk::abi;

// The OOM killer never picks a queue daemon (ublksrv does the same).
constexpr int kOomScoreAdjust = -1000;

uint64_t wantedFlags(const DeviceSpec& spec, uint64_t features) {
  namespace f = abi::feature;
  uint64_t flags = f::kCmdIoctlEncode;
  switch (spec.recovery) {
    case Recovery::None:
      break;
    case Recovery::Reissue:
      flags |= f::kUserRecovery | f::kUserRecoveryReissue;
      break;
    case Recovery::FailIo:
      if ((features & f::kUserRecoveryFailIo) == 0) {
        throw ServiceError(ErrorKind::KernelUnsupported,
                           "/recovery: fail-io needs a kernel with USER_RECOVERY_FAIL_IO (6.13 or newer)");
      }
      flags |= f::kUserRecovery | f::kUserRecoveryFailIo;
      break;
  }
  // QUIESCE_DEV (planned handover) needs USER_RECOVERY.
  if ((flags & f::kUserRecovery) != 0) flags |= features & f::kQuiesce;
  // A backend resized under a live device (rbd) is followed where the kernel can.
  flags |= features & f::kUpdateSize;
  return flags;
}

// UBLKD_ZERO_COPY=0 serves a device that could be zero-copy with copies instead: for benchmarks
// of the one against the other, and a way out should a kernel's zero copy misbehave.
bool zeroCopyWanted() {
  const char* env = std::getenv("UBLKD_ZERO_COPY");
  return env == nullptr || std::string_view(env) != "0";
}

uint64_t dataPathFlags(ublk::DataPath path, uint64_t features) {
  switch (path) {
    case ublk::DataPath::None:
      return features & abi::feature::kUserCopy;
    case ublk::DataPath::HandlerMapped:
      return abi::feature::kNeedGetData;  // in every kernel since 6.0
    case ublk::DataPath::ZeroCopy:
      // SUPPORT_ZERO_COPY lets the queue register a request's pages itself when the kernel's
      // automatic registration fails (the fallback). Without AUTO_BUF_REG (before 6.16): Copy.
      if ((features & abi::feature::kAutoBufReg) == 0 || !zeroCopyWanted()) return 0;
      return features & (abi::feature::kAutoBufReg | abi::feature::kSupportZeroCopy);
    case ublk::DataPath::Copy:
      break;
  }
  return 0;
}

uint8_t shiftOf(uint32_t bytes) { return static_cast<uint8_t>(std::countr_zero(bytes)); }

abi::Params paramsFor(const Geometry& g, const abi::DevInfo& info) {
  abi::Params p{};
  p.types = abi::param::kTypeBasic;
  p.basic.attrs = (g.readOnly ? abi::param::kAttrReadOnly : 0) |
                  (g.volatileCache ? abi::param::kAttrVolatileCache : 0) |
                  (g.volatileCache && g.fua ? abi::param::kAttrFua : 0);
  p.basic.logical_bs_shift = shiftOf(g.logicalBlock);
  p.basic.physical_bs_shift = shiftOf(g.physicalBlock);
  p.basic.io_min_shift = shiftOf(g.physicalBlock);
  p.basic.io_opt_shift = shiftOf(g.physicalBlock);
  p.basic.max_sectors =
      (g.maxRequestBytes != 0 ? std::min(info.max_io_buf_bytes, g.maxRequestBytes) : info.max_io_buf_bytes) >> 9;
  p.basic.dev_sectors = g.sizeBytes >> 9;
  if (g.discard || g.writeZeroes) {
    p.types |= abi::param::kTypeDiscard;
    p.discard.discard_granularity =
        std::max(g.discardGranularity != 0 ? g.discardGranularity : g.physicalBlock, g.logicalBlock);
    p.discard.max_discard_sectors = g.discard ? g.maxDiscardSectors : 0;
    p.discard.max_write_zeroes_sectors = g.writeZeroes ? g.maxWriteZeroesSectors : 0;
    p.discard.max_discard_segments = 1;
  }
  // Zero copy hands the request's own pages to the backend: they must meet its alignment.
  if ((info.flags & abi::feature::kAutoBufReg) != 0 && g.dmaAlignment > 1) {
    p.types |= abi::param::kTypeDmaAlign;
    p.dma.alignment = g.dmaAlignment - 1;
  }
  return p;
}

void setScheduler(uint32_t devId, const std::string& scheduler) {
  const std::string path = fmt::format("/sys/block/ublkb{}/queue/scheduler", devId);
  std::ofstream out(path);
  out << scheduler << std::flush;
  if (!out) throw std::runtime_error(fmt::format("cannot set I/O scheduler '{}' in {}", scheduler, path));
}

// How long a queue thread keeps polling for requests after a batch before it sleeps. Under load
// this saves a sleep and a cross-CPU wakeup per batch on both sides (measured: ublkd-null from
// 0.75x to 0.90x of null_blk in our guests); an idle device sleeps 30 us after its last request.
// UBLKD_POLL_US overrides it; 0 turns polling off.
constexpr unsigned kDefaultPollMicros = 30;
std::chrono::microseconds pollWindow() {
  const char* env = std::getenv("UBLKD_POLL_US");
  return std::chrono::microseconds(env != nullptr ? std::strtoul(env, nullptr, 10) : kDefaultPollMicros);
}

// The signals the main thread waits for; blocked in every thread so only sigwait sees them.
sigset_t serverSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);  // a queue thread failed
  sigaddset(&set, SIGUSR2);  // hand the device over to a successor
  sigaddset(&set, SIGHUP);   // the target's size changed (raised by the target's watch)
  return set;
}

// How long a handover may wait for every queue to have an idle fetch to abort.
constexpr std::chrono::seconds kQuiesceTimeout{10};
// How long a recovery waits for the dead daemon's release to leave the device QUIESCED.
constexpr std::chrono::seconds kRecoverableTimeout{30};
// How long STOP_DEV may wait for the requests in flight. ublkd kills a stopping daemon only after
// this (Manager's stop timeout is longer), and answers its caller after that.
constexpr std::chrono::seconds kStopDeadline{10};

// The old queue daemon's /dev/ublkcN is released in a workqueue after it exits (and up to 5 s
// later on kernels with the monitor), so the device reaches QUIESCED (or FAIL_IO) a little late.
void waitUntilRecoverable(ublk::ControlDevice& control, uint32_t devId) {
  const auto deadline = std::chrono::steady_clock::now() + kRecoverableTimeout;
  auto pause = std::chrono::milliseconds(10);
  while (true) {
    const auto state = static_cast<abi::DevState>(control.getDeviceInfo(devId).state);
    if (state == abi::DevState::Quiesced || state == abi::DevState::FailIo) return;
    if (state == abi::DevState::Dead) {
      throw std::runtime_error(fmt::format("device {} was stopped; there is nothing to recover", devId));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error(
          fmt::format("device {} is still live {} s after its queue daemon was to end; is "
                      "another queue daemon serving it?",
                      devId, kRecoverableTimeout.count()));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
}

// The running device: everything set up so far, torn down in reverse by the destructor. A device
// this process created is deleted with it; one it recovered is deleted only after it served it
// (a failed recovery leaves it to the supervisor); one handed over or abandoned is never touched.
class Device {
 public:
  enum class Origin { Added, Recovered };
  Device(ublk::ControlDevice& control, const abi::DevInfo& info, ublk::DataPath path, Origin origin)
      : control_(control), info_(info), dataPath_(path), origin_(origin) {}
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  ~Device() { teardown(); }

  uint32_t id() const { return info_.dev_id; }
  const abi::DevInfo& info() const { return info_; }

  // With statsFd open (and laid out), each queue thread counts its requests there.
  void startQueues(Target& target, ublk::UniqueFd statsFd) {
    target_ = &target;
    if (statsFd) {
      // Counting is no reason to stop serving: a file that cannot be laid out means no statistics.
      try {
        stats_.emplace(std::move(statsFd), info_.nr_hw_queues);
      } catch (const std::exception& e) {
        fmt::print(stderr, "ublkd serve: device {}: serving without statistics: {}\n", id(), e.what());
      }
    }
    charFd_ = ublk::openCharDevice(id());
    stopFd_ = ublk::UniqueFd(::eventfd(0, EFD_CLOEXEC));
    if (!stopFd_) ublk::throwErrno(errno, "eventfd");
    files_ = target.files();
    std::vector<std::future<void>> ready;
    for (uint16_t q = 0; q < info_.nr_hw_queues; ++q) {
      std::promise<void> promise;
      ready.push_back(promise.get_future());
      const cpu_set_t cpus = control_.getQueueAffinity(id(), q);
      threads_.emplace_back(&Device::serveQueue, this, q, cpus, target.makeHandler(q, info_.queue_depth, dataPath_),
                            std::move(promise));
    }
    for (auto& f : ready) f.get();  // rethrows a queue's setup failure
  }

  void start() {
    if (origin_ == Origin::Added) {
      control_.startDevice(id(), ::getpid());
    } else {
      control_.endUserRecovery(id(), ::getpid());
    }
    started_ = true;
  }

  // QUIESCE_DEV keeps new requests in the kernel and aborts our idle fetches. The queue threads
  // then commit what they hold and end (teardown's stopFd); once /dev/ublkcN is closed the device
  // is QUIESCED, and the kernel requeues for the successor anything we still owned.
  void handOver() {
    stopping_ = true;
    control_.quiesceDevice(id(), kQuiesceTimeout);
    keepDevice_ = true;
  }

  // Leaves without STOP_DEV: the kernel sees this daemon go and holds (or fails) new I/O until a
  // successor recovers the device. Only for devices with USER_RECOVERY.
  void abandon() { keepDevice_ = true; }
  bool recoverable() const { return (info_.flags & abi::feature::kUserRecovery) != 0; }

  std::string queueError() {
    std::lock_guard lock(errorMutex_);
    return queueError_;
  }

 private:
  void serveQueue(uint16_t q, cpu_set_t cpus, std::unique_ptr<ublk::RequestHandler> handler, std::promise<void> ready) {
    bool setUp = false;
    try {
      // Best effort: a hint, not a need; a refusal (a sandbox, a cpuset) is said, not fatal.
      if (const int err = pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus); err != 0) {
        fmt::print(stderr, "ublkd serve: device {}: queue {}: cannot pin it to its CPUs: {}\n", id(), q,
                   std::strerror(err));
      }
      pthread_setname_np(pthread_self(), fmt::format("ublkd-q{}", q).c_str());
      std::optional<QueueStats> counting;
      if (stats_) counting.emplace(stats_->queue(q), info_.queue_depth);
      ublk::Queue queue({.devId = id(),
                         .id = q,
                         .depth = info_.queue_depth,
                         .bufferBytes = info_.max_io_buf_bytes,
                         .dataPath = dataPath_,
                         .charFd = charFd_.get(),
                         .files = files_,
                         .stopFd = stopFd_.get(),
                         .pollWindow = pollWindow(),
                         .observer = counting ? &*counting : nullptr});
      queue.fetchAll();
      setUp = true;
      ready.set_value();
      queue.run(*handler);
      // Every tag aborted without our asking: the device was stopped or deleted from outside,
      // and a server that went on waiting for signals would serve nothing.
      if (!stopping_) {
        {
          std::lock_guard lock(errorMutex_);
          queueError_ = fmt::format(
              "queue {}: the kernel aborted all its requests (the device was stopped from "
              "outside ublkd?)",
              q);
        }
        ::kill(::getpid(), SIGUSR1);
      }
    } catch (const std::exception& e) {
      if (!setUp) {
        ready.set_exception(std::current_exception());
        return;
      }
      {
        std::lock_guard lock(errorMutex_);
        queueError_ = fmt::format("queue {}: {}", q, e.what());
      }
      ::kill(::getpid(), SIGUSR1);
    }
  }

  // Reverse order of creation; each step reports but does not stop the ones after it.
  void teardown() {
    auto attempt = [this](const char* what, auto&& step) {
      try {
        step();
      } catch (const std::exception& e) {
        fmt::print(stderr, "ublkd serve: device {}: {} failed: {}\n", id(), what, e.what());
      }
    };
    stopping_ = true;
    const bool deleting = !keepDevice_ && (origin_ == Origin::Added || started_);
    control_.setDeadline(kStopDeadline);
    if (started_ && deleting) {
      target_->stopping();
      attempt("STOP_DEV", [this] { control_.stopDevice(id()); });
    }
    if (stopFd_ && (!started_ || keepDevice_)) {
      // STOP_DEV is not (or was not) coming to abort the fetches: tell the queue threads directly.
      const uint64_t one = 1;
      attempt("stopping the queues", [&] {
        if (::write(stopFd_.get(), &one, sizeof(one)) != sizeof(one)) ublk::throwErrno(errno, "eventfd write");
      });
    }
    for (auto& t : threads_) t.join();
    charFd_.reset();
    // Without waiting: a reader that still holds /dev/ublkbN open must not hold up our exit.
    if (deleting) attempt("DEL_DEV", [this] { control_.deleteDeviceWithoutWaiting(id()); });
  }

  ublk::ControlDevice& control_;
  abi::DevInfo info_;
  ublk::DataPath dataPath_;
  Origin origin_;
  bool keepDevice_ = false;
  Target* target_ = nullptr;  // set by startQueues; outlives the device
  std::optional<StatsFile> stats_;
  ublk::UniqueFd charFd_;
  ublk::UniqueFd stopFd_;
  std::vector<int> files_;
  std::vector<std::thread> threads_;
  bool started_ = false;
  std::atomic<bool> stopping_ = false;  // set before we stop, quiesce or abandon the queues
  std::mutex errorMutex_;
  std::string queueError_;
};

// Memory reclaim in this process must never wait for writeback to the device it serves: that is
// the loop device's classic deadlock. PR_SET_IO_FLUSHER (CAP_SYS_RESOURCE; inherited by the queue
// threads made after it) keeps our allocations from starting I/O, and the OOM killer, which would
// take the device away from everything on it, passes us over. Without the capability (a test run
// by hand) the device is still served, and the warning says what is missing.
void guardAgainstReclaim() {
  if (::prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) != 0) {
    fmt::print(stderr, "ublkd serve: warning: PR_SET_IO_FLUSHER: {} (needs CAP_SYS_RESOURCE)\n", std::strerror(errno));
  }
  std::ofstream oom("/proc/self/oom_score_adj");
  oom << kOomScoreAdjust << std::flush;
  if (!oom) {
    fmt::print(stderr, "ublkd serve: warning: cannot set oom_score_adj {}: {}\n", kOomScoreAdjust,
               std::strerror(errno));
  }
}

}  // namespace

// The backend's size changed under the live device: UPDATE_SIZE where the device has it (Linux
// 6.16), unless the spec fixed the size; otherwise say what the device keeps.
void Server::followResize(ublk::ControlDevice& control, const abi::DevInfo& info, uint64_t bytes) {
  const uint64_t sectors = bytes >> 9;
  if (spec_.size) {
    fmt::print(stderr, "ublkd serve: device {}: the backend is now {} bytes; the device keeps the spec's {}\n",
               info.dev_id, bytes, *spec_.size);
  } else if ((info.flags & abi::feature::kUpdateSize) == 0) {
    fmt::print(stderr,
               "ublkd serve: device {}: the backend is now {} bytes; this kernel cannot resize a live device "
               "(UPDATE_SIZE), so the device keeps its size until it is restarted\n",
               info.dev_id, bytes);
  } else {
    try {
      control.updateSize(info.dev_id, sectors);
      fmt::print(stderr, "ublkd serve: device {}: resized to {} bytes, as its backend\n", info.dev_id, sectors << 9);
    } catch (const std::exception& e) {
      fmt::print(stderr, "ublkd serve: device {}: cannot follow the backend to {} bytes: {}\n", info.dev_id, bytes,
                 e.what());
    }
  }
}

int Server::run() {
  const sigset_t signals = serverSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  guardAgainstReclaim();

  ublk::ControlDevice control;
  uint64_t features = 0;
  try {
    features = control.getFeatures();
  } catch (const std::system_error&) {
    // Kernels before 6.5 have no GET_FEATURES; ADD_DEV's answer is the contract anyway.
  }
  std::unique_ptr<Target> target = makeTarget(spec_, std::move(options_.backing));

  std::optional<Device> device;
  if (options_.recoverId) {
    // The kernel's info is the contract: queues, depth, buffer size and flags as ADD_DEV granted.
    const abi::DevInfo info = control.getDeviceInfo(*options_.recoverId);
    if (options_.cookie != 0 && info.ublksrv_flags != options_.cookie) {
      throw ServiceError(ErrorKind::Failed,
                         fmt::format("device {} is not the device to recover: its cookie is {:#x}, not {:#x} (another "
                                     "server's device at a reused id?); leaving it alone",
                                     info.dev_id, info.ublksrv_flags, options_.cookie));
    }
    if ((info.flags & abi::feature::kUserRecovery) == 0) {
      throw ServiceError(
          ErrorKind::Failed,
          fmt::format("device {} was created without USER_RECOVERY; it cannot be recovered", info.dev_id));
    }
    waitUntilRecoverable(control, info.dev_id);
    control.startUserRecovery(info.dev_id);
    device.emplace(control, info, ublk::dataPathOf(info.flags), Device::Origin::Recovered);
  } else {
    const Geometry geometry = target->geometry();
    const ublk::DataPath path =
        target->preferredDataPath((features & abi::feature::kAutoBufReg) != 0 && zeroCopyWanted());
    const uint16_t queues = std::min(spec_.queues, target->maxQueues().value_or(spec_.queues));
    const abi::DevInfo granted =
        control.addDevice({.nr_hw_queues = queues,
                           .queue_depth = spec_.depth,
                           .max_io_buf_bytes = kMaxIoBytes,
                           .dev_id = UINT32_MAX,
                           .flags = wantedFlags(spec_, features) | dataPathFlags(path, features),
                           .ublksrv_flags = options_.cookie});
    device.emplace(control, granted, ublk::dataPathOf(granted.flags), Device::Origin::Added);
    if (events_.onAdded) events_.onAdded(device->id());
    if (granted.nr_hw_queues != queues || granted.queue_depth != spec_.depth) {
      fmt::print(stderr, "ublkd serve: device {}: the kernel granted {} queues of depth {} (asked {} of {})\n",
                 device->id(), granted.nr_hw_queues, granted.queue_depth, queues, spec_.depth);
    }
    control.setParams(device->id(), paramsFor(geometry, granted));
  }
  device->startQueues(*target, std::move(options_.statsFd));
  device->start();
  if (!options_.recoverId) setScheduler(device->id(), spec_.scheduler);

  fmt::print("/dev/ublkb{}\n", device->id());
  std::fflush(stdout);
  fmt::print(stderr, "ublkd serve: device {}: {} queues of depth {}, data path {}\n", device->id(),
             device->info().nr_hw_queues, device->info().queue_depth,
             ublk::dataPathName(ublk::dataPathOf(device->info().flags)));
  if (events_.onReady) {
    const abi::DevInfo& info = device->info();
    events_.onReady(device->id(), {.flags = info.flags,
                                   .queues = info.nr_hw_queues,
                                   .depth = info.queue_depth,
                                   .bytes = control.getParams(device->id()).basic.dev_sectors << 9});
  }

  // The size the backend now has, from the target's watch thread; 0 = no change to apply.
  static std::atomic<uint64_t> resizedTo = 0;
  target->watchSize([](uint64_t bytes) {
    resizedTo = bytes;
    ::kill(::getpid(), SIGHUP);
  });
  int signal = 0;
  while (sigwait(&signals, &signal) == 0 && signal == SIGHUP) {
    if (const uint64_t bytes = resizedTo.exchange(0); bytes != 0) followResize(control, device->info(), bytes);
  }
  if (signal == SIGUSR2) {
    try {
      device->handOver();
      return 0;
    } catch (const std::exception& e) {
      // The device may be half quiesced: leaving it is what a crash would do, and recovery follows.
      fmt::print(stderr, "ublkd serve: device {}: handover failed: {}; leaving it to recovery\n", device->id(),
                 e.what());
      device->abandon();
      return 1;
    }
  }
  if (signal == SIGUSR1) {
    fmt::print(stderr, "ublkd serve: device {}: {}; stopping\n", device->id(), device->queueError());
    // With USER_RECOVERY a successor takes over, so applications see no error.
    if (device->recoverable()) device->abandon();
    return 1;
  }
  return 0;
}

}  // namespace ublkd
