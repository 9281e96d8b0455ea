// Unit names of paths: normalization and systemd's escaping (systemd-escape --path).
#include "unit_name.h"

#include <gtest/gtest.h>

namespace {

using ublkd::generator::escapePath;
using ublkd::generator::isUnder;
using ublkd::generator::normalizedPath;
using ublkd::generator::pathUnit;

TEST(NormalizedPath, DropsRepeatedAndTrailingSlashesAndDots) {
  EXPECT_EQ(normalizedPath("/mnt//data/./x/"), "/mnt/data/x");
  EXPECT_EQ(normalizedPath("/"), "/");
  EXPECT_EQ(normalizedPath("//"), "/");
  EXPECT_EQ(normalizedPath("mnt/data"), std::nullopt);
  EXPECT_EQ(normalizedPath("none"), std::nullopt);
  EXPECT_EQ(normalizedPath("/mnt/../etc"), std::nullopt);
}

// The same names systemd-escape --path gives.
TEST(EscapePath, AsSystemdEscapeDoes) {
  EXPECT_EQ(escapePath("/"), "-");
  EXPECT_EQ(escapePath("/mnt/data"), "mnt-data");
  EXPECT_EQ(escapePath("/mnt/my-data"), "mnt-my\\x2ddata");
  EXPECT_EQ(escapePath("/dev/ublk/by-name/disk0"), "dev-ublk-by\\x2dname-disk0");
  EXPECT_EQ(escapePath("/srv/a b"), "srv-a\\x20b");
  EXPECT_EQ(escapePath("/.hidden/x.y:z_w"), "\\x2ehidden-x.y:z_w");
  EXPECT_EQ(escapePath("/a\\b"), "a\\x5cb");
  EXPECT_EQ(escapePath("/caf\xc3\xa9"), "caf\\xc3\\xa9");
}

TEST(PathUnit, AppendsTheType) {
  EXPECT_EQ(pathUnit("/mnt/data", "mount"), "mnt-data.mount");
  EXPECT_EQ(pathUnit("/dev/disk/by-id/virtio-x", "device"), "dev-disk-by\\x2did-virtio\\x2dx.device");
}

TEST(IsUnder, ComparesWholeComponents) {
  EXPECT_TRUE(isUnder("/srv/a", "/srv"));
  EXPECT_TRUE(isUnder("/srv", "/srv"));
  EXPECT_TRUE(isUnder("/srv/a", "/"));
  EXPECT_FALSE(isUnder("/srvx/a", "/srv"));
  EXPECT_FALSE(isUnder("/srv", "/srv/a"));
}

}  // namespace
