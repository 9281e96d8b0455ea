// The named-error table: every kind has a bus name and a distinct, documented exit code.
#include "errors.h"

#include <set>

#include <gtest/gtest.h>

namespace ublkd::bus {
namespace {

constexpr ErrorKind kAll[] = {ErrorKind::InvalidSpec, ErrorKind::NotFound,           ErrorKind::Exists,
                              ErrorKind::Busy,        ErrorKind::KernelUnsupported,  ErrorKind::PermissionDenied,
                              ErrorKind::Timeout,     ErrorKind::BackendUnavailable, ErrorKind::Failed};

TEST(NamedErrors, BusNamesRoundTrip) {
  for (const ErrorKind kind : kAll) EXPECT_EQ(kindOfBusError(errorName(kind)), kind) << errorName(kind);
  EXPECT_EQ(errorName(ErrorKind::InvalidSpec), "org.ublk.Error.InvalidSpec");
}

TEST(NamedErrors, BusPolicyRefusalIsPermissionDenied) {
  EXPECT_EQ(kindOfBusError("org.freedesktop.DBus.Error.AccessDenied"), ErrorKind::PermissionDenied);
  EXPECT_FALSE(kindOfBusError("org.freedesktop.DBus.Error.ServiceUnknown").has_value());
}

TEST(NamedErrors, ExitCodesAreDistinctAndAvoidUsageAndUnreachable) {
  std::set<int> codes;
  for (const ErrorKind kind : kAll) {
    const int code = exitCode(kind);
    EXPECT_NE(code, 0);
    EXPECT_NE(code, 2);  // usage
    EXPECT_NE(code, 9);  // ublkd unreachable
    codes.insert(code);
  }
  EXPECT_EQ(codes.size(), std::size(kAll));
}

}  // namespace
}  // namespace ublkd::bus
