// DeviceRecords: the run directory's files round-trip, and a record from an older ublkd reads
// back with defaults for what it lacks.
#include "device_records.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "text_file.h"

namespace ublkd {
namespace {

namespace fs = std::filesystem;

class DeviceRecordsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/ublkd-records-test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    runDir_ = dir;
  }
  void TearDown() override { fs::remove_all(runDir_); }
  fs::path runDir_;
};

TEST_F(DeviceRecordsTest, RecordRoundTripsEveryField) {
  DeviceRecords records(runDir_);
  const DeviceRecord written{.name = "disk0",
                             .state = "live",
                             .cookie = 0x55424b4412345678,
                             .id = 3,
                             .pid = 4242,
                             .spec = R"({"target":"loop","path":"/var/lib/ublk/a.img"})",
                             .restarts = 2,
                             .sizeBytes = uint64_t{1} << 30,
                             .lastExitReason = "killed by SIGKILL",
                             .reason = "",
                             .owner = 1000,
                             .backingPath = "/var/lib/ublk/a.img",
                             .backing = FileIdentity{.device = 2049, .inode = 77}};
  records.write(written);
  const std::vector<fs::path> files = records.recordFiles();
  ASSERT_EQ(files.size(), 1u);
  const DeviceRecord read = DeviceRecord::fromJson(readTextFile(files[0]));
  EXPECT_EQ(read.toJson(), written.toJson());
  EXPECT_EQ(read.backing, written.backing);
  EXPECT_EQ(read.sizeBytes, written.sizeBytes);
  EXPECT_EQ(read.owner, 1000u);
}

TEST_F(DeviceRecordsTest, OlderRecordReadsBackWithDefaults) {
  const DeviceRecord read =
      DeviceRecord::fromJson(R"({"name":"d","state":"live","id":1,"pid":9,"spec":"{\"target\":\"null\"}"})");
  EXPECT_EQ(read.cookie, 0u);
  EXPECT_FALSE(read.sizeBytes.has_value());
  EXPECT_FALSE(read.backing.has_value());
  EXPECT_EQ(read.restarts, 0u);
  EXPECT_EQ(read.owner, 0u);  // root's, as every device was before owners were recorded
  EXPECT_THROW(DeviceRecord::fromJson(R"({"name":"d"})"), std::exception);  // no spec
}

TEST_F(DeviceRecordsTest, RemoveTakesSpecRecordAndUdevFileAndToleratesMissingOnes) {
  DeviceRecords records(runDir_);
  records.writeSpec("disk0", "{}");
  DeviceRecord record;
  record.name = "disk0";
  record.spec = "{}";
  records.write(record);
  fs::create_directories(runDir_ / "udev");
  { std::ofstream(runDir_ / "udev" / "ublkb5") << "UBLK_NAME=disk0\n"; }
  records.remove("disk0", 5);
  EXPECT_FALSE(fs::exists(records.specPath("disk0")));
  EXPECT_TRUE(records.recordFiles().empty());
  EXPECT_FALSE(fs::exists(runDir_ / "udev" / "ublkb5"));
  EXPECT_NO_THROW(records.remove("disk0", 5));
}

}  // namespace
}  // namespace ublkd
