// Manager's request checks and the daemon's settings file: what is refused before anything starts.
#include <fstream>

#include <gtest/gtest.h>

#include "daemon_config.h"
#include "device_spec.h"
#include "manager.h"

namespace ublkd {
namespace {

void expectInvalidName(const std::string& name, const std::string& why) {
  try {
    validateDeviceName(name);
    ADD_FAILURE() << "accepted '" << name << "'";
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidSpec);
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
}

TEST(DeviceName, AcceptsUnitAndFileFriendlyNames) {
  for (const std::string& name :
       {std::string("disk0"), std::string("a"), std::string("db-data_1.2"), std::string(64, 'x')}) {
    EXPECT_NO_THROW(validateDeviceName(name)) << name;
  }
}

TEST(DeviceName, RejectsEachBadShapeWithItsReason) {
  expectInvalidName("", "1 to 64");
  expectInvalidName(std::string(65, 'x'), "1 to 64");
  expectInvalidName("-disk", "start with a letter or digit");
  expectInvalidName(".hidden", "start with a letter or digit");
  expectInvalidName("../etc", "start with a letter or digit");
  expectInvalidName("a/b", "only letters");
  expectInvalidName("disk 0", "only letters");
}

class DaemonConfigTest : public ::testing::Test {
 protected:
  std::filesystem::path write(const std::string& text) {
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override { std::filesystem::remove(path_); }
  // One file per test: ctest runs the tests of this fixture in parallel.
  std::filesystem::path path_ =
      std::filesystem::temp_directory_path() /
      (std::string("ublkd-config-") + ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".json");
};

TEST_F(DaemonConfigTest, MissingFileIsTheDefaults) {
  EXPECT_FALSE(loadDaemonConfig("/nonexistent/ublkd.json").autostart);
}

TEST_F(DaemonConfigTest, ReadsAutostart) { EXPECT_TRUE(loadDaemonConfig(write(R"({"autostart": true})")).autostart); }

TEST_F(DaemonConfigTest, ReadsTheCrashLoopLimit) {
  const DaemonConfig config = loadDaemonConfig(write(R"({"crash_loop": {"deaths": 3, "within_seconds": 60}})"));
  EXPECT_EQ(config.crashLoopDeaths, 3u);
  EXPECT_EQ(config.crashLoopWithinSeconds, 60u);
  EXPECT_EQ(loadDaemonConfig(write(R"({"crash_loop": {"deaths": 4}})")).crashLoopWithinSeconds, 10u);
}

TEST_F(DaemonConfigTest, RejectsWithTheField) {
  auto fieldOf = [&](const std::string& text) {
    try {
      loadDaemonConfig(write(text));
    } catch (const SpecError& e) {
      return e.field();
    }
    return std::string("accepted");
  };
  EXPECT_EQ(fieldOf(R"({"autostart": "yes"})"), "/autostart");
  EXPECT_EQ(fieldOf(R"({"autostrat": true})"), "/autostrat");
  EXPECT_EQ(fieldOf(R"({"crash_loop": 5})"), "/crash_loop");
  EXPECT_EQ(fieldOf(R"({"crash_loop": {"deaths": 0}})"), "/crash_loop/deaths");
  EXPECT_EQ(fieldOf(R"({"crash_loop": {"within_seconds": -1}})"), "/crash_loop/within_seconds");
  EXPECT_EQ(fieldOf(R"({"crash_loop": {"seconds": 5}})"), "/crash_loop/seconds");
  EXPECT_EQ(fieldOf(R"([1])"), "");
  EXPECT_EQ(fieldOf(R"({)"), "");
}

TEST(SpecFiles, ListsJsonFilesByName) {
  const auto dir = std::filesystem::temp_directory_path() / "ublkd-specdir-test";
  std::filesystem::create_directories(dir);
  for (const char* f : {"b.json", "a.json", "notes.txt"}) std::ofstream(dir / f) << "{}";
  const auto specs = listSpecFiles(dir);
  std::filesystem::remove_all(dir);
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[0].first, "a");
  EXPECT_EQ(specs[1].first, "b");
}

}  // namespace
}  // namespace ublkd
