// ServeStatus: the queue daemon's status line round-trips, and anything else is a failure.
#include "serve_status.h"

#include <system_error>

#include "device_spec.h"

#include <gtest/gtest.h>

namespace ublkd {
namespace {

TEST(ServeStatus, ReadyRoundTrips) {
  const ServeStatus status = ServeStatus::parse(ServeStatus::ready(17));
  ASSERT_TRUE(status.readyId.has_value());
  EXPECT_EQ(*status.readyId, 17u);
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
  for (const char* line : {"", "ready", "ready x", "ready 12x", "added", "added -1", "failed Nonsense oops", "hello"}) {
    const ServeStatus status = ServeStatus::parse(line);
    EXPECT_FALSE(status.readyId.has_value()) << line;
    EXPECT_EQ(status.failure, ErrorKind::Failed) << line;
    EXPECT_NE(status.message.find("unexpected status"), std::string::npos) << line;
  }
}

TEST(ErrorKind, NamesRoundTrip) {
  for (const ErrorKind kind : {ErrorKind::InvalidSpec, ErrorKind::NotFound, ErrorKind::Exists, ErrorKind::Busy,
                               ErrorKind::KernelUnsupported, ErrorKind::PermissionDenied, ErrorKind::Failed}) {
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
