// ControlDevice: submission of control uring_cmds with deadlines and bounded retries.
#include "control_device.h"

#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "throw_errno.h"

namespace ublk {
namespace {

using Clock = std::chrono::steady_clock;

constexpr unsigned kRingEntries = 8;
// How long a cancelled command may take to hand back its CQE once the deadline has passed.
constexpr auto kCancelGrace = std::chrono::seconds(5);

__kernel_timespec timespecUntil(Clock::time_point when) {
  const auto left = std::max(Clock::duration::zero(), when - Clock::now());
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  return {.tv_sec = ns / 1'000'000'000, .tv_nsec = ns % 1'000'000'000};
}

template <typename T>
uint64_t addressOf(T& object) {
  return reinterpret_cast<uintptr_t>(&object);
}

std::string deviceLabel(uint32_t devId) {
  return devId == UINT32_MAX ? std::string("no device") : fmt::format("device {}", devId);
}

}  // namespace

ControlDevice::ControlDevice(Options options)
    : options_(std::move(options)),
      fd_(UniqueFd::open(options_.path, O_RDWR)),
      ring_(kRingEntries, IORING_SETUP_SQE128) {}

uint64_t ControlDevice::getFeatures() {
  uint64_t features = 0;
  execute("GET_FEATURES", abi::cmd::kGetFeatures,
          {.dev_id = kNoDevice, .len = sizeof(features), .addr = addressOf(features)});
  return features;
}

abi::DevInfo ControlDevice::addDevice(const abi::DevInfo& want) {
  abi::DevInfo info = want;
  execute("ADD_DEV", abi::cmd::kAddDev, {.dev_id = want.dev_id, .len = sizeof(info), .addr = addressOf(info)});
  return info;
}

abi::DevInfo ControlDevice::getDeviceInfo(uint32_t devId) {
  abi::DevInfo info{};
  execute("GET_DEV_INFO", abi::cmd::kGetDevInfo, {.dev_id = devId, .len = sizeof(info), .addr = addressOf(info)});
  return info;
}

void ControlDevice::setParams(uint32_t devId, const abi::Params& params) {
  abi::Params copy = params;
  copy.len = sizeof(copy);
  execute("SET_PARAMS", abi::cmd::kSetParams, {.dev_id = devId, .len = sizeof(copy), .addr = addressOf(copy)});
}

abi::Params ControlDevice::getParams(uint32_t devId) {
  abi::Params params{};
  params.len = sizeof(params);
  execute("GET_PARAMS", abi::cmd::kGetParams, {.dev_id = devId, .len = sizeof(params), .addr = addressOf(params)});
  return params;
}

cpu_set_t ControlDevice::getQueueAffinity(uint32_t devId, uint16_t queue) {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  execute("GET_QUEUE_AFFINITY", abi::cmd::kGetQueueAffinity,
          {.dev_id = devId, .len = sizeof(cpus), .addr = addressOf(cpus), .data = queue});
  return cpus;
}

void ControlDevice::startDevice(uint32_t devId, pid_t pid) {
  execute("START_DEV", abi::cmd::kStartDev, {.dev_id = devId, .data = static_cast<uint64_t>(pid)});
}

void ControlDevice::stopDevice(uint32_t devId) { execute("STOP_DEV", abi::cmd::kStopDev, {.dev_id = devId}); }

void ControlDevice::deleteDevice(uint32_t devId) { execute("DEL_DEV", abi::cmd::kDelDev, {.dev_id = devId}); }

void ControlDevice::deleteDeviceAsync(uint32_t devId) {
  execute("DEL_DEV_ASYNC", abi::cmd::kDelDevAsync, {.dev_id = devId});
}

void ControlDevice::deleteDeviceWithoutWaiting(uint32_t devId) {
  try {
    deleteDeviceAsync(devId);
  } catch (const std::system_error& e) {
    // Kernels before 6.9 do not know the command.
    if (e.code().value() != EOPNOTSUPP && e.code().value() != EINVAL) throw;
    deleteDevice(devId);
  }
}

void ControlDevice::startUserRecovery(uint32_t devId) {
  execute("START_USER_RECOVERY", abi::cmd::kStartUserRecovery, {.dev_id = devId}, BusyIs::Transient);
}

void ControlDevice::endUserRecovery(uint32_t devId, pid_t pid) {
  execute("END_USER_RECOVERY", abi::cmd::kEndUserRecovery, {.dev_id = devId, .data = static_cast<uint64_t>(pid)});
}

void ControlDevice::updateSize(uint32_t devId, uint64_t sectors) {
  execute("UPDATE_SIZE", abi::cmd::kUpdateSize, {.dev_id = devId, .data = sectors});
}

void ControlDevice::quiesceDevice(uint32_t devId, std::chrono::milliseconds timeout) {
  execute("QUIESCE_DEV", abi::cmd::kQuiesceDev, {.dev_id = devId, .data = static_cast<uint64_t>(timeout.count())});
}

void ControlDevice::tryStopDevice(uint32_t devId) { execute("TRY_STOP_DEV", abi::cmd::kTryStopDev, {.dev_id = devId}); }

int ControlDevice::execute(std::string_view name, uint32_t op, abi::CtrlCmd cmd, BusyIs busy) {
  const auto deadline = Clock::now() + options_.deadline;
  auto backoff = std::chrono::milliseconds(5);
  for (unsigned attempt = 0;; ++attempt) {
    const int res = submitOnce(op, cmd, deadline);
    if (res >= 0) return res;
    const bool transient = res == -EINTR || (res == -EBUSY && busy == BusyIs::Transient);
    if (!transient || attempt >= options_.maxRetries || Clock::now() + backoff >= deadline) {
      const std::string retried = attempt > 0 ? fmt::format(", after {} retries", attempt) : "";
      throwErrno(-res, fmt::format("{} ({}{})", name, deviceLabel(cmd.dev_id), retried));
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
  }
}

int ControlDevice::submitOnce(uint32_t op, const abi::CtrlCmd& cmd, Clock::time_point deadline) {
  io_uring* ring = ring_.get();
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  if (sqe == nullptr) throwErrno(EBUSY, "control ring full");
  std::memset(sqe, 0, 2 * sizeof(io_uring_sqe));  // SQE128: the command spills into the second half
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fd_.get();
  sqe->cmd_op = op;
  std::memcpy(sqe->cmd, &cmd, sizeof(cmd));
  const uint64_t tag = nextUserData_++;
  sqe->user_data = tag;

  int ret = io_uring_submit(ring);
  if (ret < 0) throwErrno(-ret, "io_uring_submit (control ring)");

  bool cancelled = false;
  for (;;) {
    const auto waitUntil = cancelled ? Clock::now() + kCancelGrace : deadline;
    __kernel_timespec ts = timespecUntil(waitUntil);
    io_uring_cqe* cqe = nullptr;
    ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
    if (ret == -EINTR) continue;
    if (ret == -ETIME) {
      if (cancelled) throwErrno(ETIMEDOUT, "control command did not complete after cancellation");
      io_uring_sqe* cancel = io_uring_get_sqe(ring);
      if (cancel == nullptr) throwErrno(EBUSY, "control ring full (cancel)");
      std::memset(cancel, 0, 2 * sizeof(io_uring_sqe));
      io_uring_prep_cancel64(cancel, tag, 0);
      cancel->user_data = 0;
      ret = io_uring_submit(ring);
      if (ret < 0) throwErrno(-ret, "io_uring_submit (control cancel)");
      cancelled = true;
      continue;
    }
    if (ret < 0) throwErrno(-ret, "io_uring_wait_cqe (control ring)");
    const uint64_t from = cqe->user_data;
    const int res = cqe->res;
    io_uring_cqe_seen(ring, cqe);
    if (from != tag) continue;  // a cancel's own CQE, or a stale one from an earlier timeout
    // A command that finished as the deadline passed keeps its result; a cut-off one times out.
    return cancelled && res < 0 ? -ETIMEDOUT : res;
  }
}

}  // namespace ublk
