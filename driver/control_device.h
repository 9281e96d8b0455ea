// ControlDevice: owns /dev/ublk-control and the SQE128 io_uring that carries control commands.
// Each public method is one UBLK_U_CMD_*; they share execute(), which gives every command a
// deadline, retries EINTR (and EBUSY where the caller says it is transient) within a bound, and
// throws std::system_error naming the command, the device id and the errno text.
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "abi.h"
#include "ring.h"
#include "unique_fd.h"

namespace ublk {

class ControlDevice {
 public:
  struct Options {
    std::string path = "/dev/ublk-control";
    std::chrono::milliseconds deadline{30'000};  // per command, retries included
    unsigned maxRetries = 50;
  };

  explicit ControlDevice(Options options);
  ControlDevice() : ControlDevice(Options{}) {}

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

  // Runs one command to completion and returns its non-negative result.
  int execute(std::string_view name, uint32_t op, abi::CtrlCmd cmd, BusyIs busy = BusyIs::Final);
  // One submission; returns cqe->res, or -ETIMEDOUT once the deadline passed (after cancelling).
  int submitOnce(uint32_t op, const abi::CtrlCmd& cmd, std::chrono::steady_clock::time_point deadline);

  Options options_;
  UniqueFd fd_;
  Ring ring_;
  uint64_t nextUserData_ = 1;
};

}  // namespace ublk
