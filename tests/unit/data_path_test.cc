// The data path a device's granted flags commit it to, and its name.
#include "data_path.h"

#include <gtest/gtest.h>

#include "abi.h"

namespace {

using ublk::DataPath;
namespace feature = ublk::abi::feature;

TEST(DataPath, FollowsTheGrantedFlags) {
  EXPECT_EQ(ublk::dataPathOf(feature::kCmdIoctlEncode), DataPath::Copy);
  EXPECT_EQ(ublk::dataPathOf(feature::kUserCopy), DataPath::None);
  EXPECT_EQ(ublk::dataPathOf(feature::kNeedGetData | feature::kUserRecovery), DataPath::HandlerMapped);
  // Zero copy asks for SUPPORT_ZERO_COPY as well, for its fallback; AUTO_BUF_REG decides.
  EXPECT_EQ(ublk::dataPathOf(feature::kAutoBufReg | feature::kSupportZeroCopy), DataPath::ZeroCopy);
  EXPECT_EQ(ublk::dataPathOf(feature::kSupportZeroCopy), DataPath::Copy);
}

TEST(DataPath, Names) {
  EXPECT_EQ(ublk::dataPathName(DataPath::ZeroCopy), "zero-copy");
  EXPECT_EQ(ublk::dataPathName(DataPath::HandlerMapped), "mapped");
  EXPECT_EQ(ublk::dataPathName(DataPath::None), "user-copy");
  EXPECT_EQ(ublk::dataPathName(DataPath::Copy), "copy");
}

}  // namespace
