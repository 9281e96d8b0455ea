// The nbd target's setup against a real nbdkit on a Unix socket (no ublk device needed): the
// geometry it takes from what the server advertises, and the named error for each way a server
// can be wrong. The data path runs in the guest tests (tests/vm/cases/nbd_target.sh).
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "device_spec.h"
#include "service_error.h"
#include "target.h"

namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Property;
using ::testing::Throws;
using ublkd::ErrorKind;
using ublkd::ServiceError;
using ublkd::SpecError;

// One nbdkit for the test, listening on a socket in a private directory; killed at the end.
class Nbdkit {
 public:
  explicit Nbdkit(const std::string& args) {
    char dir[] = "/tmp/ublkd-nbd-test-XXXXXX";
    if (::mkdtemp(dir) == nullptr) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    dir_ = dir;
    const std::string pidFile = dir_ + "/pid";
    // nbdkit forks once the socket listens, and writes its pid then.
    const std::string command = fmt::format("nbdkit -U {} -P {} {} 2>&1", socket(), pidFile, args);
    if (std::system(command.c_str()) != 0) throw std::runtime_error("cannot start: " + command);
    std::ifstream(pidFile) >> pid_;
  }
  ~Nbdkit() {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
    std::filesystem::remove_all(dir_);
  }
  std::string socket() const { return dir_ + "/nbd.sock"; }
  std::string uri(const std::string& exportName = "") const {
    return fmt::format("nbd+unix:///{}?socket={}", exportName, socket());
  }

 private:
  std::string dir_;
  pid_t pid_ = 0;
};

bool haveNbdkit() { return std::system("nbdkit --version >/dev/null 2>&1") == 0; }

ublkd::DeviceSpec nbdSpec(const std::string& uri, const std::string& extra = "") {
  return ublkd::parseDeviceSpec(fmt::format(R"({{"target":"nbd","uri":"{}"{}}})", uri, extra));
}

auto Names(ErrorKind kind, const std::string& part) {
  return Throws<ServiceError>(
      AllOf(Property(&ServiceError::kind, kind), Property(&ServiceError::what, HasSubstr(part))));
}

class NbdTarget : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!haveNbdkit()) GTEST_SKIP() << "nbdkit is not installed (scripts/install-deps)";
  }
};

TEST_F(NbdTarget, TakesItsGeometryFromTheExport) {
  const Nbdkit server("memory 64M");
  const auto target = ublkd::makeTarget(nbdSpec(server.uri(), R"(,"queues":2)"));
  const ublkd::Geometry g = target->geometry();
  EXPECT_EQ(target->name(), "nbd");
  EXPECT_EQ(g.sizeBytes, 64u << 20);
  EXPECT_EQ(g.logicalBlock, 512u);
  EXPECT_FALSE(g.readOnly);
  EXPECT_TRUE(g.discard);
  EXPECT_TRUE(g.writeZeroes);
  EXPECT_TRUE(g.volatileCache);
  EXPECT_TRUE(g.fua);
  EXPECT_FALSE(target->maxQueues().has_value()) << "nbdkit memory advertises multi-conn";
}

TEST_F(NbdTarget, ReadOnlyExportMakesAReadOnlyDevice) {
  const Nbdkit server("-r memory 16M");
  const ublkd::Geometry g = ublkd::makeTarget(nbdSpec(server.uri()))->geometry();
  EXPECT_TRUE(g.readOnly);
  EXPECT_FALSE(g.discard);
  EXPECT_FALSE(g.writeZeroes);
}

TEST_F(NbdTarget, ServerWithoutMultiConnGetsOneQueue) {
  const Nbdkit server("--filter=multi-conn memory 16M multi-conn-mode=disable");
  EXPECT_EQ(ublkd::makeTarget(nbdSpec(server.uri(), R"(,"queues":4)"))->maxQueues(), 1);
}

TEST_F(NbdTarget, SizeAndBlockSizeMustFitTheExport) {
  const Nbdkit server("memory 16M");
  EXPECT_EQ(ublkd::makeTarget(nbdSpec(server.uri(), R"(,"size":"8M")"))->geometry().sizeBytes, 8u << 20);
  EXPECT_THAT([&] { (void)ublkd::makeTarget(nbdSpec(server.uri(), R"(,"size":"32M")")); },
              Throws<SpecError>(Property(&SpecError::field, "/size")));
}

TEST_F(NbdTarget, EachWayToFailHasItsNamedError) {
  const Nbdkit server("--filter=exportname memory 16M exportname=disk exportname-strict=true");
  EXPECT_EQ(ublkd::makeTarget(nbdSpec(server.uri("disk")))->geometry().sizeBytes, 16u << 20);
  EXPECT_THAT([&] { (void)ublkd::makeTarget(nbdSpec(server.uri("other"))); },
              Names(ErrorKind::BackendUnavailable, "/uri: cannot connect to"));
  EXPECT_THAT([&] { (void)ublkd::makeTarget(nbdSpec("nbd+unix:///?socket=/nonexistent/nbd.sock")); },
              Names(ErrorKind::BackendUnavailable, "No such file or directory"));
  EXPECT_THAT([&] { (void)ublkd::makeTarget(nbdSpec("nbd://[::1")); },
              Throws<SpecError>(Property(&SpecError::field, "/uri")));
}

}  // namespace
