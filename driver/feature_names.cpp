// The feature-name table: the one place a UBLK_F_* bit gets its name.
#include "feature_names.h"

#include <array>
#include <bit>

#include <fmt/format.h>

namespace ublk {
namespace {

constexpr std::array<std::string_view, 20> kNames = {
    "SUPPORT_ZERO_COPY",
    "URING_CMD_COMP_IN_TASK",
    "NEED_GET_DATA",
    "USER_RECOVERY",
    "USER_RECOVERY_REISSUE",
    "UNPRIVILEGED_DEV",
    "CMD_IOCTL_ENCODE",
    "USER_COPY",
    "ZONED",
    "USER_RECOVERY_FAIL_IO",
    "UPDATE_SIZE",
    "AUTO_BUF_REG",
    "QUIESCE",
    "PER_IO_DAEMON",
    "BUF_REG_OFF_DAEMON",
    "BATCH_IO",
    "INTEGRITY",
    "SAFE_STOP_DEV",
    "NO_AUTO_PART_SCAN",
    "SHMEM_ZC",
};

}  // namespace

std::string_view featureName(unsigned bit) { return bit < kNames.size() ? kNames[bit] : std::string_view{}; }

std::vector<std::string> featureNames(uint64_t mask) {
  std::vector<std::string> names;
  while (mask != 0) {
    const unsigned bit = std::countr_zero(mask);
    mask &= mask - 1;
    const std::string_view known = featureName(bit);
    names.push_back(known.empty() ? fmt::format("BIT_{}", bit) : std::string(known));
  }
  return names;
}

}  // namespace ublk
