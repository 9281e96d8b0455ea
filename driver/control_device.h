// ControlDevice: owns /dev/ublk-control and the SQE128 io_uring that carries control commands.
// Each public method is one UBLK_U_CMD_*; they share execute(), which gives every command a
// deadline, retries EINTR (and EBUSY where the caller says it is transient) within a bound, and
// throws std::system_error naming the command, the device id and the errno text.
#pragma once

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
