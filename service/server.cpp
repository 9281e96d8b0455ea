// Server: the device lifecycle of `ublkd serve`:
// ADD_DEV -> SET_PARAMS -> queue threads FETCH -> START_DEV -> serve -> STOP_DEV -> DEL_DEV.
#include "server.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "char_device.h"
#include "control_device.h"
#include "queue.h"
#include "service_error.h"
#include "target.h"

namespace ublkd {
namespace {

namespace abi = ublk::abi;

// Per-request buffer (copy mode). 512 KiB keeps depth x buffer per queue modest.
constexpr uint32_t kMaxIoBytes = 512 * 1024;

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
  return flags;
}

uint64_t dataPathFlags(ublk::DataPath path, uint64_t features) {
  switch (path) {
    case ublk::DataPath::None:
      return features & abi::feature::kUserCopy;
    case ublk::DataPath::HandlerMapped:
      return abi::feature::kNeedGetData;  // in every kernel since 6.0
    case ublk::DataPath::Copy:
      break;
  }
  return 0;
}

// What the device got: a path whose feature the kernel did not grant falls back to Copy.
ublk::DataPath grantedDataPath(ublk::DataPath wanted, uint64_t granted) {
  if (wanted == ublk::DataPath::None && (granted & abi::feature::kUserCopy) != 0) return wanted;
  if (wanted == ublk::DataPath::HandlerMapped && (granted & abi::feature::kNeedGetData) != 0) return wanted;
  return ublk::DataPath::Copy;
}

uint8_t shiftOf(uint32_t bytes) { return static_cast<uint8_t>(std::countr_zero(bytes)); }

abi::Params paramsFor(const Geometry& g, const abi::DevInfo& info) {
  abi::Params p{};
  p.types = abi::param::kTypeBasic;
  p.basic.attrs = (g.readOnly ? abi::param::kAttrReadOnly : 0) |
                  (g.volatileCache ? abi::param::kAttrVolatileCache | abi::param::kAttrFua : 0);
  p.basic.logical_bs_shift = shiftOf(g.logicalBlock);
  p.basic.physical_bs_shift = shiftOf(g.physicalBlock);
  p.basic.io_min_shift = shiftOf(g.physicalBlock);
  p.basic.io_opt_shift = shiftOf(g.physicalBlock);
  p.basic.max_sectors = info.max_io_buf_bytes >> 9;
  p.basic.dev_sectors = g.sizeBytes >> 9;
  if (g.discard) {
    p.types |= abi::param::kTypeDiscard;
    p.discard.discard_granularity = g.physicalBlock;
    p.discard.max_discard_sectors = UINT32_MAX >> 9;
    p.discard.max_write_zeroes_sectors = UINT32_MAX >> 9;
    p.discard.max_discard_segments = 1;
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
  return set;
}

// The running device: everything created so far, torn down in reverse by the destructor.
class Device {
 public:
  Device(ublk::ControlDevice& control, const abi::DevInfo& info, ublk::DataPath path)
      : control_(control), info_(info), dataPath_(path) {}
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  ~Device() { teardown(); }

  uint32_t id() const { return info_.dev_id; }

  void startQueues(Target& target) {
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
    control_.startDevice(id(), ::getpid());
    started_ = true;
  }

  std::string queueError() {
    std::lock_guard lock(errorMutex_);
    return queueError_;
  }

 private:
  void serveQueue(uint16_t q, cpu_set_t cpus, std::unique_ptr<ublk::RequestHandler> handler, std::promise<void> ready) {
    bool setUp = false;
    try {
      pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);  // best effort: a hint, not a need
      pthread_setname_np(pthread_self(), fmt::format("ublkd-q{}", q).c_str());
      ublk::Queue queue({.devId = id(),
                         .id = q,
                         .depth = info_.queue_depth,
                         .bufferBytes = info_.max_io_buf_bytes,
                         .dataPath = dataPath_,
                         .charFd = charFd_.get(),
                         .files = files_,
                         .stopFd = stopFd_.get(),
                         .pollWindow = pollWindow()});
      queue.fetchAll();
      setUp = true;
      ready.set_value();
      queue.run(*handler);
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
    if (started_) attempt("STOP_DEV", [this] { control_.stopDevice(id()); });
    if (stopFd_ && !started_) {
      // Never started, so STOP_DEV cannot abort the fetches: tell the queue threads directly.
      const uint64_t one = 1;
      attempt("stopping the queues", [&] {
        if (::write(stopFd_.get(), &one, sizeof(one)) != sizeof(one)) ublk::throwErrno(errno, "eventfd write");
      });
    }
    for (auto& t : threads_) t.join();
    charFd_.reset();
    // Without waiting: a reader that still holds /dev/ublkbN open must not hold up our exit.
    attempt("DEL_DEV", [this] { control_.deleteDeviceWithoutWaiting(id()); });
  }

  ublk::ControlDevice& control_;
  abi::DevInfo info_;
  ublk::DataPath dataPath_;
  ublk::UniqueFd charFd_;
  ublk::UniqueFd stopFd_;
  std::vector<int> files_;
  std::vector<std::thread> threads_;
  bool started_ = false;
  std::mutex errorMutex_;
  std::string queueError_;
};

}  // namespace

int Server::run() {
  const sigset_t signals = serverSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ublk::ControlDevice control;
  uint64_t features = 0;
  try {
    features = control.getFeatures();
  } catch (const std::system_error&) {
    // Kernels before 6.5 have no GET_FEATURES; ADD_DEV's answer is the contract anyway.
  }
  std::unique_ptr<Target> target = makeTarget(spec_);
  const Geometry geometry = target->geometry();

  const abi::DevInfo granted =
      control.addDevice({.nr_hw_queues = spec_.queues,
                         .queue_depth = spec_.depth,
                         .max_io_buf_bytes = kMaxIoBytes,
                         .dev_id = UINT32_MAX,
                         .flags = wantedFlags(spec_, features) | dataPathFlags(target->preferredDataPath(), features)});
  Device device(control, granted, grantedDataPath(target->preferredDataPath(), granted.flags));
  if (events_.onAdded) events_.onAdded(device.id());
  if (granted.nr_hw_queues != spec_.queues || granted.queue_depth != spec_.depth) {
    fmt::print(stderr, "ublkd serve: device {}: the kernel granted {} queues of depth {} (asked {} of {})\n",
               device.id(), granted.nr_hw_queues, granted.queue_depth, spec_.queues, spec_.depth);
  }
  control.setParams(device.id(), paramsFor(geometry, granted));
  device.startQueues(*target);
  device.start();
  setScheduler(device.id(), spec_.scheduler);

  fmt::print("/dev/ublkb{}\n", device.id());
  std::fflush(stdout);
  if (events_.onReady) events_.onReady(device.id());

  int signal = 0;
  sigwait(&signals, &signal);
  if (signal == SIGUSR1) {
    fmt::print(stderr, "ublkd serve: device {}: {}; stopping\n", device.id(), device.queueError());
    return 1;
  }
  return 0;
}

}  // namespace ublkd
