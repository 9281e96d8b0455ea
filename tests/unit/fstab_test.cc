// fstab parsing: fields, comments, octal escapes and options.
#include "fstab.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace {

using ::testing::ElementsAre;
using ublkd::generator::parseFstab;

TEST(ParseFstab, ReadsTheFieldsOfEachMountLine) {
  const auto entries = parseFstab(
      "# /etc/fstab: static file system information.\n"
      "\n"
      "UUID=1234 / ext4 errors=remount-ro 0 1\n"
      "  /dev/ublk/by-name/data\t/mnt/data  ext4\t_netdev,noatime 0 2\n");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].line, 3);
  EXPECT_EQ(entries[0].what, "UUID=1234");
  EXPECT_EQ(entries[1].line, 4);
  EXPECT_EQ(entries[1].what, "/dev/ublk/by-name/data");
  EXPECT_EQ(entries[1].where, "/mnt/data");
  EXPECT_EQ(entries[1].type, "ext4");
  EXPECT_THAT(entries[1].options, ElementsAre("_netdev", "noatime"));
}

TEST(ParseFstab, DecodesOctalEscapes) {
  const auto entries = parseFstab("/dev/ublk/by-name/a /mnt/my\\040data ext4 defaults\n");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].where, "/mnt/my data");
  EXPECT_EQ(parseFstab("/dev/x /a\\04 ext4\n").at(0).where, "/a\\04");  // too short: kept as it is
}

TEST(ParseFstab, DefaultsMissingFieldsAndSkipsShortLines) {
  const auto entries = parseFstab("/dev/ublk/by-name/a /mnt/a\nonlyone\n#/dev/x /y ext4\n/dev/b /b ext4");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].type, "auto");
  EXPECT_THAT(entries[0].options, ElementsAre("defaults"));
  EXPECT_EQ(entries[1].line, 4);  // the last line needs no newline
}

TEST(FstabEntry, HasOptionMatchesWholeOptionsOrPrefixes) {
  const auto entry = parseFstab("/d /m ext4 _netdev,x-systemd.requires=a.service,nofailx\n").at(0);
  EXPECT_TRUE(entry.hasOption("_netdev"));
  EXPECT_FALSE(entry.hasOption("nofail"));
  EXPECT_TRUE(entry.hasOption("x-systemd.requires="));
  EXPECT_FALSE(entry.hasOption("x-systemd.requires"));
}

}  // namespace
