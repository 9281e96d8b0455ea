// ControlDevice against real files and a real io_uring: open failures, command failures, and
// (where the host has ublk_drv) a real GET_FEATURES.
#include "control_device.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>

#include <system_error>

namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(ControlDevice, MissingNodeNamesPathAndReason) {
  try {
    ublk::ControlDevice control({.path = "/nonexistent/ublk-control"});
    FAIL() << "opened a missing control node";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
    EXPECT_THAT(e.what(), AllOf(HasSubstr("open /nonexistent/ublk-control"), HasSubstr("No such file or directory")));
  }
}

// A regular file takes no uring_cmd: the kernel's refusal must come back named after the command.
// (Not /dev/null: newer kernels give it a no-op uring_cmd for io_uring's own tests.)
TEST(ControlDevice, RefusedCommandNamesCommandAndErrno) {
  char path[] = "/tmp/ublkd-control-test.XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  ublk::ControlDevice control({.path = path});
  unlink(path);
  try {
    control.getFeatures();
    FAIL() << "GET_FEATURES succeeded on a regular file";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EOPNOTSUPP);
    EXPECT_THAT(e.what(), AllOf(HasSubstr("GET_FEATURES (no device)"), HasSubstr("not supported")));
  }
}

// The asynchronous path: the kernel's answer reaches the callback with the payload it owns.
TEST(ControlDevice, SubmittedCommandAnswersThroughItsCallback) {
  char path[] = "/tmp/ublkd-control-test.XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  ublk::ControlDevice control({.path = path});
  unlink(path);
  int result = 0;
  size_t bytes = 0;
  control.submit(ublk::ControlCommand::getDeviceInfo(0), [&](int res, std::span<const std::byte> payload) {
    result = res;
    bytes = payload.size();
  });
  EXPECT_EQ(control.inFlight(), 1u);
  while (control.inFlight() > 0) {
    pollfd ready{.fd = control.completionFd(), .events = POLLIN, .revents = 0};
    ASSERT_EQ(poll(&ready, 1, 5000), 1) << "no completion within 5 s";
    control.reapCompletions();
  }
  EXPECT_EQ(result, -EOPNOTSUPP);
  EXPECT_EQ(bytes, sizeof(ublk::abi::DevInfo));
}

// An abandoned command's callback never runs, however its completion arrives.
TEST(ControlDevice, AbandonedCommandNeverCallsBack) {
  char path[] = "/tmp/ublkd-control-test.XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  ublk::ControlDevice control({.path = path});
  unlink(path);
  bool called = false;
  const uint64_t tag =
      control.submit(ublk::ControlCommand::stopDevice(0), [&](int, std::span<const std::byte>) { called = true; });
  control.abandon(tag);
  while (control.inFlight() > 0) {
    pollfd ready{.fd = control.completionFd(), .events = POLLIN, .revents = 0};
    ASSERT_EQ(poll(&ready, 1, 5000), 1) << "no completion within 5 s";
    control.reapCompletions();
  }
  EXPECT_FALSE(called);
}

TEST(ControlDevice, GetFeaturesOnRealKernel) {
  if (access("/dev/ublk-control", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/ublk-control on this host";
  ublk::ControlDevice control;
  EXPECT_NE(control.getFeatures() & ublk::abi::feature::kCmdIoctlEncode, 0u);
}

}  // namespace
