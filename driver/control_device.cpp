// ControlDevice: submission of control uring_cmds with deadlines and bounded retries.
#include "control_device.h"

#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "throw_errno.h"

namespace ublk {
namespace {

using Clock = std::chrono::steady_clock;

constexpr unsigned kRingEntries = 32;
// A cancel's own CQE; no command gets tag 0.
constexpr uint64_t kCancelTag = 0;

__kernel_timespec timespecUntil(Clock::time_point when) {
  const auto left = std::max(Clock::duration::zero(), when - Clock::now());
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  return {.tv_sec = ns / 1'000'000'000, .tv_nsec = ns % 1'000'000'000};
}

std::string deviceLabel(uint32_t devId) {
  return devId == UINT32_MAX ? std::string("no device") : fmt::format("device {}", devId);
}

ControlCommand withoutPayload(std::string_view name, uint32_t op, uint32_t devId) {
  return {.name = name, .op = op, .header = {.dev_id = devId}, .payload = {}};
}

// Payloads of commands still in the kernel when their ControlDevice goes: the kernel may yet
// write them, so they are kept for the rest of the process's life.
std::vector<std::vector<std::byte>>& orphanedPayloads() {
  static std::vector<std::vector<std::byte>> kept;
  return kept;
}

}  // namespace

ControlCommand ControlCommand::getDeviceInfo(uint32_t devId) {
  return {.name = "GET_DEV_INFO",
          .op = abi::cmd::kGetDevInfo,
          .header = {.dev_id = devId},
          .payload = std::vector<std::byte>(sizeof(abi::DevInfo))};
}

ControlCommand ControlCommand::getParams(uint32_t devId) {
  abi::Params params{};
  params.len = sizeof(params);
  std::vector<std::byte> bytes(sizeof(params));
  std::memcpy(bytes.data(), &params, sizeof(params));
  return {.name = "GET_PARAMS", .op = abi::cmd::kGetParams, .header = {.dev_id = devId}, .payload = std::move(bytes)};
}

ControlCommand ControlCommand::stopDevice(uint32_t devId) {
  return withoutPayload("STOP_DEV", abi::cmd::kStopDev, devId);
}
ControlCommand ControlCommand::deleteDevice(uint32_t devId) {
  return withoutPayload("DEL_DEV", abi::cmd::kDelDev, devId);
}
ControlCommand ControlCommand::deleteDeviceAsync(uint32_t devId) {
  return withoutPayload("DEL_DEV_ASYNC", abi::cmd::kDelDevAsync, devId);
}
ControlCommand ControlCommand::updateSize(uint32_t devId, uint64_t sectors) {
  return {
      .name = "UPDATE_SIZE", .op = abi::cmd::kUpdateSize, .header = {.dev_id = devId, .data = sectors}, .payload = {}};
}

ControlDevice::ControlDevice(Options options)
    : options_(std::move(options)),
      fd_(UniqueFd::open(options_.path, O_RDWR)),
      ring_(kRingEntries, IORING_SETUP_SQE128) {}

ControlDevice::~ControlDevice() {
  for (auto& [tag, pending] : pending_) orphanedPayloads().push_back(std::move(pending.payload));
}

template <typename T>
std::span<std::byte> bytesOf(T& object) {
  return std::as_writable_bytes(std::span(&object, 1));
}

uint64_t ControlDevice::getFeatures() {
  uint64_t features = 0;
  execute("GET_FEATURES", abi::cmd::kGetFeatures, {.dev_id = kNoDevice}, BusyIs::Final, bytesOf(features));
  return features;
}

abi::DevInfo ControlDevice::addDevice(const abi::DevInfo& want) {
  abi::DevInfo info = want;
  execute("ADD_DEV", abi::cmd::kAddDev, {.dev_id = want.dev_id}, BusyIs::Final, bytesOf(info));
  return info;
}

abi::DevInfo ControlDevice::getDeviceInfo(uint32_t devId) {
  abi::DevInfo info{};
  execute("GET_DEV_INFO", abi::cmd::kGetDevInfo, {.dev_id = devId}, BusyIs::Final, bytesOf(info));
  return info;
}

void ControlDevice::setParams(uint32_t devId, const abi::Params& params) {
  abi::Params copy = params;
  copy.len = sizeof(copy);
  execute("SET_PARAMS", abi::cmd::kSetParams, {.dev_id = devId}, BusyIs::Final, bytesOf(copy));
}

abi::Params ControlDevice::getParams(uint32_t devId) {
  abi::Params params{};
  params.len = sizeof(params);
  execute("GET_PARAMS", abi::cmd::kGetParams, {.dev_id = devId}, BusyIs::Final, bytesOf(params));
  return params;
}

cpu_set_t ControlDevice::getQueueAffinity(uint32_t devId, uint16_t queue) {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  execute("GET_QUEUE_AFFINITY", abi::cmd::kGetQueueAffinity, {.dev_id = devId, .data = queue}, BusyIs::Final,
          bytesOf(cpus));
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

int ControlDevice::execute(std::string_view name, uint32_t op, abi::CtrlCmd cmd, BusyIs busy,
                           std::span<std::byte> payload) {
  const auto deadline = Clock::now() + options_.deadline;
  auto backoff = std::chrono::milliseconds(5);
  for (unsigned attempt = 0;; ++attempt) {
    const int res = runOnce({.name = name, .op = op, .header = cmd, .payload = {payload.begin(), payload.end()}},
                            payload, deadline);
    if (res >= 0) return res;
    const bool transient = res == -EINTR || (res == -EBUSY && busy == BusyIs::Transient);
    if (!transient || attempt >= options_.maxRetries || Clock::now() + backoff >= deadline) {
      const std::string retried = attempt > 0 ? fmt::format(", after {} retries", attempt) : "";
      const std::string late =
          res == -ETIMEDOUT ? fmt::format(" within {} ms; the kernel may still carry it out", options_.deadline.count())
                            : "";
      throwErrno(-res, fmt::format("{} ({}{}){}", name, deviceLabel(cmd.dev_id), retried, late));
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
  }
}

int ControlDevice::runOnce(ControlCommand command, std::span<std::byte> payload, Clock::time_point deadline) {
  std::optional<int> result;
  // Runs only if the command completes before this frame returns: abandon() drops it.
  const uint64_t tag = submit(std::move(command), [&](int res, std::span<const std::byte> bytes) {
    result = res;
    std::ranges::copy(bytes.first(std::min(payload.size(), bytes.size())), payload.begin());
  });
  while (!result) {
    __kernel_timespec ts = timespecUntil(deadline);
    io_uring_cqe* cqe = nullptr;
    const int ret = io_uring_wait_cqe_timeout(ring_.get(), &cqe, &ts);
    if (ret == -ETIME) {
      abandon(tag);
      return -ETIMEDOUT;
    }
    if (ret < 0 && ret != -EINTR) throwErrno(-ret, "io_uring_wait_cqe (control ring)");
    reapCompletions();
  }
  return *result;
}

io_uring_sqe* ControlDevice::freeSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (sqe == nullptr) throwErrno(EBUSY, "control ring full");
  std::memset(sqe, 0, 2 * sizeof(io_uring_sqe));  // SQE128: the command spills into the second half
  return sqe;
}

uint64_t ControlDevice::submit(ControlCommand command, Done done) {
  const uint64_t tag = nextTag_++;
  Pending& pending = pending_[tag];
  pending.payload = std::move(command.payload);
  pending.done = std::move(done);
  abi::CtrlCmd header = command.header;
  if (!pending.payload.empty()) {
    header.addr = reinterpret_cast<uintptr_t>(pending.payload.data());
    header.len = static_cast<uint16_t>(pending.payload.size());
  }
  try {
    io_uring_sqe* sqe = freeSqe();
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fd_.get();
    sqe->cmd_op = command.op;
    std::memcpy(sqe->cmd, &header, sizeof(header));
    sqe->user_data = tag;
    const int ret = io_uring_submit(ring_.get());
    if (ret < 0) throwErrno(-ret, fmt::format("io_uring_submit ({}, {})", command.name, deviceLabel(header.dev_id)));
  } catch (...) {
    pending_.erase(tag);
    throw;
  }
  return tag;
}

void ControlDevice::reapCompletions() {
  io_uring_cqe* cqe = nullptr;
  while (io_uring_peek_cqe(ring_.get(), &cqe) == 0) {
    const uint64_t tag = cqe->user_data;
    const int res = cqe->res;
    io_uring_cqe_seen(ring_.get(), cqe);
    auto node = pending_.extract(tag);
    if (node.empty()) continue;  // a cancel's own CQE
    if (node.mapped().done) node.mapped().done(res, node.mapped().payload);
  }
}

void ControlDevice::abandon(uint64_t tag) {
  auto it = pending_.find(tag);
  if (it == pending_.end()) return;
  it->second.done = nullptr;
  // Best effort: a command already running in the kernel's io-wq is seldom cancellable.
  try {
    io_uring_sqe* sqe = freeSqe();
    io_uring_prep_cancel64(sqe, tag, 0);
    sqe->user_data = kCancelTag;
    io_uring_submit(ring_.get());
  } catch (const std::system_error&) {
  }
}

}  // namespace ublk
