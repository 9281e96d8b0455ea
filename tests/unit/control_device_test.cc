// ControlDevice against real files and a real io_uring: open failures, command failures, and
// (where the host has ublk_drv) a real GET_FEATURES.
#include "control_device.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <system_error>

namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// A ControlDevice over a regular file, which takes no uring_cmd: every command fails with
// EOPNOTSUPP, through the same ring a real /dev/ublk-control uses.
// (Not /dev/null: newer kernels give it a no-op uring_cmd for io_uring's own tests.)
std::unique_ptr<ublk::ControlDevice> controlOverRegularFile() {
  char path[] = "/tmp/ublkd-control-test.XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "mkstemp");
  close(fd);
  auto control = std::make_unique<ublk::ControlDevice>(ublk::ControlDevice::Options{.path = path});
  unlink(path);
  return control;
}

// Reaps until no command is in flight, each wait at most 5 s.
void reapAll(ublk::ControlDevice& control) {
  while (control.inFlight() > 0) {
    pollfd ready{.fd = control.completionFd(), .events = POLLIN, .revents = 0};
    ASSERT_EQ(poll(&ready, 1, 5000), 1) << "no completion within 5 s";
    control.reapCompletions();
  }
}

TEST(ControlDevice, MissingNodeNamesPathAndReason) {
  try {
    ublk::ControlDevice control({.path = "/nonexistent/ublk-control"});
    FAIL() << "opened a missing control node";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
    EXPECT_THAT(e.what(), AllOf(HasSubstr("open /nonexistent/ublk-control"), HasSubstr("No such file or directory")));
  }
}

// The kernel's refusal comes back named after the command.
TEST(ControlDevice, RefusedCommandNamesCommandAndErrno) {
  auto control = controlOverRegularFile();
  try {
    control->getFeatures();
    FAIL() << "GET_FEATURES succeeded on a regular file";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EOPNOTSUPP);
    EXPECT_THAT(e.what(), AllOf(HasSubstr("GET_FEATURES (no device)"), HasSubstr("not supported")));
  }
}

// The asynchronous path: the kernel's answer reaches the callback with the payload it owns.
TEST(ControlDevice, SubmittedCommandAnswersThroughItsCallback) {
  auto control = controlOverRegularFile();
  int result = 0;
  size_t bytes = 0;
  control->submit(ublk::ControlCommand::getDeviceInfo(0), [&](int res, std::span<const std::byte> payload) {
    result = res;
    bytes = payload.size();
  });
  EXPECT_EQ(control->inFlight(), 1u);
  reapAll(*control);
  EXPECT_EQ(result, -EOPNOTSUPP);
  EXPECT_EQ(bytes, sizeof(ublk::abi::DevInfo));
}

// An abandoned command's callback never runs, however its completion arrives.
TEST(ControlDevice, AbandonedCommandNeverCallsBack) {
  auto control = controlOverRegularFile();
  bool called = false;
  const uint64_t tag =
      control->submit(ublk::ControlCommand::stopDevice(0), [&](int, std::span<const std::byte>) { called = true; });
  control->abandon(tag);
  reapAll(*control);
  EXPECT_FALSE(called);
}

TEST(ControlDevice, GetFeaturesOnRealKernel) {
  if (access("/dev/ublk-control", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/ublk-control on this host";
  ublk::ControlDevice control;
  EXPECT_NE(control.getFeatures() & ublk::abi::feature::kCmdIoctlEncode, 0u);
}

}  // namespace
