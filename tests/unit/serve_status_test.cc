// ServeStatus: the queue daemon's status line round-trips, and anything else is a failure.
#include "serve_status.h"

#include <system_error>

#include "device_spec.h"

#include <gtest/gtest.h>

namespace ublkd {
namespace {

TEST(ServeStatus, ReadyRoundTripsWithWhatTheKernelGranted) {
  const ServedGeometry granted{.flags = 0x1cb, .queues = 2, .depth = 128, .bytes = uint64_t{1} << 40};
  const ServeStatus status = ServeStatus::parse(ServeStatus::ready(17, granted));
  ASSERT_TRUE(status.readyId.has_value());
  EXPECT_EQ(*status.readyId, 17u);
  ASSERT_TRUE(status.geometry.has_value());
  EXPECT_EQ(*status.geometry, granted);
}

TEST(ServeStatus, BareReadyHasNoGeometry) {
  const ServeStatus status = ServeStatus::parse("ready 4\n");
  ASSERT_TRUE(status.readyId.has_value());
  EXPECT_FALSE(status.geometry.has_value());
}

TEST(ServeStatus, AddedRoundTripsAndIsNotTheLastWord) {
  const ServeStatus status = ServeStatus::parse(ServeStatus::added(3));
  ASSERT_TRUE(status.addedId.has_value());
  EXPECT_EQ(*status.addedId, 3u);
  EXPECT_FALSE(status.readyId.has_value());
}

TEST(ServeStatus, FailureKeepsKindAndMessageOnOneLine) {
  const ServeStatus status =
      ServeStatus::parse(ServeStatus::failed(ErrorKind::KernelUnsupported, "ADD_DEV: no\nsecond line"));
  EXPECT_FALSE(status.readyId.has_value());
  EXPECT_EQ(status.failure, ErrorKind::KernelUnsupported);
  EXPECT_EQ(status.message, "ADD_DEV: no second line");
}

TEST(ServeStatus, GarbageIsAFailureQuotingTheLine) {
  for (const char* line :
       {"", "ready", "ready x", "ready 12x", "ready 3 queues=1", "ready 3 flags=12 queues=1 depth=2 bytes=4",
        "ready 3 flags=0x1 queues=1 depth=2 bytes=4 more=5", "added", "added -1", "failed Nonsense oops", "hello"}) {
    const ServeStatus status = ServeStatus::parse(line);
    EXPECT_FALSE(status.readyId.has_value()) << line;
    EXPECT_EQ(status.failure, ErrorKind::Failed) << line;
    EXPECT_NE(status.message.find("unexpected status"), std::string::npos) << line;
  }
}

TEST(ErrorKind, NamesRoundTrip) {
  for (const ErrorKind kind :
       {ErrorKind::InvalidSpec, ErrorKind::NotFound, ErrorKind::Exists, ErrorKind::Busy, ErrorKind::KernelUnsupported,
        ErrorKind::PermissionDenied, ErrorKind::Timeout, ErrorKind::Failed}) {
    EXPECT_EQ(errorKindFromName(errorKindName(kind)), kind);
  }
  EXPECT_FALSE(errorKindFromName("invalidspec").has_value());
}

TEST(ErrorKind, ClassifiesSetupFailures) {
  EXPECT_EQ(classify(SpecError("/size", "too big")), ErrorKind::InvalidSpec);
  EXPECT_EQ(classify(std::system_error(EPERM, std::generic_category(), "ADD_DEV")), ErrorKind::PermissionDenied);
  EXPECT_EQ(classify(std::system_error(ENOENT, std::generic_category(), "open /dev/ublk-control")),
            ErrorKind::KernelUnsupported);
  EXPECT_EQ(classify(std::system_error(EIO, std::generic_category(), "x")), ErrorKind::Failed);
  EXPECT_EQ(classify(ServiceError(ErrorKind::Busy, "x")), ErrorKind::Busy);
  EXPECT_EQ(classify(std::runtime_error("x")), ErrorKind::Failed);
}

}  // namespace
}  // namespace ublkd
