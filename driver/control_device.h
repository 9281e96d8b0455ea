// ControlDevice: owns /dev/ublk-control and the SQE128 io_uring that carries control commands.
// Every command's payload (the DevInfo, Params or cpu set the kernel reads or writes) is owned
// here until the kernel completes it, so a caller that stopped waiting leaves nothing dangling.
// Two ways in: the blocking methods (one per UBLK_U_CMD_*, for a queue daemon's own thread) give
// every command a deadline, retry EINTR (and EBUSY where transient) within a bound, and throw
// std::system_error naming the command, the device id and the errno text; submit() and
// reapCompletions() are for an event loop that polls completionFd() and never waits.
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "abi.h"
#include "ring.h"
#include "unique_fd.h"

namespace ublk {

// One control command: the opcode, its header (addr and len are filled in from the payload at
// submission) and the bytes the kernel reads, writes, or both.
struct ControlCommand {
  std::string_view name;  // "GET_DEV_INFO": static text, for messages
  uint32_t op = 0;
  abi::CtrlCmd header;
  std::vector<std::byte> payload;

  static ControlCommand getDeviceInfo(uint32_t devId);
  static ControlCommand getParams(uint32_t devId);
  static ControlCommand stopDevice(uint32_t devId);
  static ControlCommand deleteDevice(uint32_t devId);
  static ControlCommand deleteDeviceAsync(uint32_t devId);
  static ControlCommand updateSize(uint32_t devId, uint64_t sectors);  // Linux 6.16+
};

// The payload read back as T (zero-filled where the kernel wrote less).
template <typename T>
T payloadAs(std::span<const std::byte> payload) {
  T value{};
  std::ranges::copy(payload.first(std::min(payload.size(), sizeof(T))),
                    std::as_writable_bytes(std::span(&value, 1)).begin());
  return value;
}

class ControlDevice {
 public:
  struct Options {
    std::string path = "/dev/ublk-control";
    std::chrono::milliseconds deadline{30'000};  // per blocking command, retries included
    unsigned maxRetries = 50;
  };
  // The kernel's result (>= 0, or -errno) and the payload as the kernel left it.
  using Done = std::function<void(int result, std::span<const std::byte> payload)>;

  explicit ControlDevice(Options options);
  ControlDevice() : ControlDevice(Options{}) {}
  ControlDevice(const ControlDevice&) = delete;
  ControlDevice& operator=(const ControlDevice&) = delete;
  ~ControlDevice();

  // Asynchronous use. submit() returns at once with the command's tag (the kernel runs control
  // commands in its io-wq, so nothing here sleeps); `done` runs from reapCompletions() once the
  // kernel answers. abandon() drops `done` and asks the kernel to cancel; the payload stays owned
  // until the kernel hands the command back, however late.
  uint64_t submit(ControlCommand command, Done done);
  int completionFd() { return ring_.get()->ring_fd; }  // readable while completions wait
  void reapCompletions();
  void abandon(uint64_t tag);
  size_t inFlight() const { return pending_.size(); }

  // The deadline of each blocking command from now on.
  void setDeadline(std::chrono::milliseconds deadline) { options_.deadline = deadline; }

  // GET_FEATURES: the UBLK_F_* mask this kernel supports (6.5+; older kernels throw).
  uint64_t getFeatures();

  // ADD_DEV: `want` asks (dev_id UINT32_MAX = any id); the returned info is what the kernel
  // granted (queues, depth, buffer size and flags may differ) and is the device's contract.
  abi::DevInfo addDevice(const abi::DevInfo& want);
  abi::DevInfo getDeviceInfo(uint32_t devId);
  void setParams(uint32_t devId, const abi::Params& params);
  abi::Params getParams(uint32_t devId);
  // The CPUs blk-mq maps to the queue, as a cpu_set_t.
  cpu_set_t getQueueAffinity(uint32_t devId, uint16_t queue);
  // START_DEV waits in the kernel until every tag of every queue has a FETCH; `pid` is the
  // process that opened /dev/ublkcN.
  void startDevice(uint32_t devId, pid_t pid);
  void stopDevice(uint32_t devId);
  // DEL_DEV waits for the last reference to the device; DEL_DEV_ASYNC (6.9+) does not.
  void deleteDevice(uint32_t devId);
  void deleteDeviceAsync(uint32_t devId);
  // DEL_DEV_ASYNC, or DEL_DEV on kernels without it.
  void deleteDeviceWithoutWaiting(uint32_t devId);
  // START_USER_RECOVERY retries EBUSY (the old server's release is still running) within the deadline.
  void startUserRecovery(uint32_t devId);
  void endUserRecovery(uint32_t devId, pid_t pid);
  void updateSize(uint32_t devId, uint64_t sectors);
  void quiesceDevice(uint32_t devId, std::chrono::milliseconds timeout);
  // TRY_STOP_DEV (7.0+): stops only when nobody holds the block device open, else EBUSY.
  void tryStopDevice(uint32_t devId);

 private:
  enum class BusyIs { Final, Transient };
  static constexpr uint32_t kNoDevice = UINT32_MAX;

  struct Pending {
    std::vector<std::byte> payload;  // what header.addr points at
    Done done;                       // empty once abandoned
  };

  // Runs one command to completion (retries included) and returns its non-negative result;
  // `payload` (if any) is copied in before and out after.
  int execute(std::string_view name, uint32_t op, abi::CtrlCmd cmd, BusyIs busy = BusyIs::Final,
              std::span<std::byte> payload = {});
  // One submission, waited for; returns the result, or -ETIMEDOUT once the deadline passed (the
  // command is then abandoned, its payload kept until the kernel is done with it).
  int runOnce(ControlCommand command, std::span<std::byte> payload, std::chrono::steady_clock::time_point deadline);
  io_uring_sqe* freeSqe();

  Options options_;
  UniqueFd fd_;
  Ring ring_;
  uint64_t nextTag_ = 1;
  std::map<uint64_t, Pending> pending_;
};

}  // namespace ublk
