// Decoding of ublk feature masks into names.
#include "feature_names.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "abi.h"

namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
namespace feature = ublk::abi::feature;

TEST(FeatureNames, EmptyMaskHasNoNames) { EXPECT_THAT(ublk::featureNames(0), IsEmpty()); }

TEST(FeatureNames, DecodesKnownBitsInBitOrder) {
  EXPECT_THAT(ublk::featureNames(feature::kUserRecovery | feature::kSupportZeroCopy | feature::kShmemZc),
              ElementsAre("SUPPORT_ZERO_COPY", "USER_RECOVERY", "SHMEM_ZC"));
}

TEST(FeatureNames, EveryNamedBitMatchesItsConstant) {
  EXPECT_EQ(ublk::featureName(std::countr_zero(feature::kCmdIoctlEncode)), "CMD_IOCTL_ENCODE");
  EXPECT_EQ(ublk::featureName(std::countr_zero(feature::kUserRecoveryFailIo)), "USER_RECOVERY_FAIL_IO");
  EXPECT_EQ(ublk::featureName(std::countr_zero(feature::kQuiesce)), "QUIESCE");
  EXPECT_EQ(ublk::featureName(std::countr_zero(feature::kBatchIo)), "BATCH_IO");
  EXPECT_EQ(ublk::featureName(std::countr_zero(feature::kSafeStopDev)), "SAFE_STOP_DEV");
}

TEST(FeatureNames, UnknownBitsAreShownByNumber) {
  EXPECT_THAT(ublk::featureNames((1ULL << 20) | (1ULL << 63) | feature::kZoned),
              ElementsAre("ZONED", "BIT_20", "BIT_63"));
  EXPECT_EQ(ublk::featureName(20), "");
}

}  // namespace
