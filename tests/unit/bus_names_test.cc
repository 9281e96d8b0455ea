// Device object paths: one per name, as systemd escapes names in object paths.
#include "bus_names.h"

#include <set>
#include <string>

#include <gtest/gtest.h>

namespace ublkd::bus {
namespace {

TEST(DevicePath, PlainNamesStayAndOthersAreEscaped) {
  EXPECT_EQ(devicePath("disk0"), "/org/ublk/Device/disk0");
  EXPECT_EQ(devicePath("db-1"), "/org/ublk/Device/db_2d1");
  EXPECT_EQ(devicePath("a.b_c"), "/org/ublk/Device/a_2eb_5fc");
  EXPECT_EQ(devicePath("0disk"), "/org/ublk/Device/_30disk");
}

TEST(DevicePath, DistinctNamesGetDistinctPaths) {
  // Escaping "_" too is what keeps "a_2d" and "a-" apart.
  const std::set<std::string> paths{devicePath("a-"), devicePath("a_2d"), devicePath("a_"), devicePath("a.")};
  EXPECT_EQ(paths.size(), 4u);
}

}  // namespace
}  // namespace ublkd::bus
