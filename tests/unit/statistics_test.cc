// Statistics: the queue side (StatsFile, QueueStats) writes a real file and the reader side
// (readSnapshot, History) reads it back: counts, bytes, errors, latency buckets, in-flight
// requests, counters kept across a queue daemon's restart, and rates over an interval.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "stats_reader.h"
#include "stats_writer.h"

#include <gtest/gtest.h>

namespace ublkd {
namespace {

namespace abi = ublk::abi;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr size_t kRead = static_cast<size_t>(stats::OpClass::Read);
constexpr size_t kWrite = static_cast<size_t>(stats::OpClass::Write);
constexpr size_t kFlush = static_cast<size_t>(stats::OpClass::Flush);

abi::IoDesc request(abi::Op op, uint32_t sectors) {
  abi::IoDesc desc{};
  desc.op_flags = static_cast<uint32_t>(op);
  desc.nr_sectors = sectors;
  return desc;
}

class Statistics : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/ublkd-stats-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ / "dev.stats";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  ublk::UniqueFd openFile() { return ublk::UniqueFd(::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)); }

  std::filesystem::path dir_, path_;
};

TEST(StatsLayout, BucketsCoverEveryValueInOrderWithinSixPercent) {
  for (uint64_t v : {0ull, 1ull, 15ull, 16ull, 17ull, 1000ull, 4095ull, 4096ull, 123456789ull, (1ull << 36) - 1}) {
    const unsigned b = stats::bucketOf(v);
    EXPECT_LE(stats::bucketStart(b), v) << v;
    EXPECT_LT(v, stats::bucketEnd(b)) << v;
    if (b > 0) {
      EXPECT_EQ(stats::bucketStart(b), stats::bucketEnd(b - 1)) << v;
    }
    if (v >= 16 && b + 1 < stats::kBuckets) {
      EXPECT_LE(stats::bucketEnd(b) - stats::bucketStart(b), v / 16 + 1) << v;
    }
  }
}

TEST(StatsLayout, TheLastBucketHoldsEverythingLongerAndSaysSo) {
  const unsigned last = stats::kBuckets - 1;
  EXPECT_EQ(stats::bucketOf(uint64_t{1} << 36), last);
  EXPECT_EQ(stats::bucketOf(uint64_t{1} << 50), last);
  EXPECT_EQ(stats::bucketEnd(last), UINT64_MAX);
  std::vector<uint64_t> histogram(stats::kBuckets);
  histogram[last] = 1;  // one request of five minutes
  EXPECT_DOUBLE_EQ(stats::percentile(histogram, 0.99), static_cast<double>(stats::bucketStart(last)) / 1000);
}

TEST_F(Statistics, CountsWhatQueuesServeAndTimesItPerBatch) {
  StatsFile file(openFile(), 2);
  QueueStats q0(file.queue(0), 4), q1(file.queue(1), 4);
  const auto t0 = Clock::time_point{} + 1h;
  q0.batchBegins(t0);
  q0.arrived(0, request(abi::Op::Read, 8));
  q0.arrived(1, request(abi::Op::Write, 16));
  q0.started(0);
  q0.started(1);
  q0.committed(1, -EIO);
  q1.batchBegins(t0);
  q1.arrived(3, request(abi::Op::Flush, 0));
  q1.started(3);
  q1.committed(3, 0);
  // The write arrives a second time (its NEED_GET_DATA, then its data): counted once.
  q0.arrived(2, request(abi::Op::Write, 8));
  q0.batchBegins(t0 + 100us);
  q0.arrived(2, request(abi::Op::Write, 8));
  q0.started(2);
  q0.batchBegins(t0 + 300us);
  q0.committed(0, 4096);
  q0.committed(2, 4096);

  const auto s = stats::readSnapshot(path_);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->queues, 2u);
  EXPECT_EQ(s->inFlight, 0u);
  EXPECT_EQ(s->ops[kRead].ops, 1u);
  EXPECT_EQ(s->ops[kRead].bytes, 4096u);
  EXPECT_EQ(s->ops[kWrite].ops, 2u);
  EXPECT_EQ(s->ops[kWrite].errors, 1u);
  EXPECT_EQ(s->ops[kWrite].bytes, 4096u);  // the failed one moved nothing
  EXPECT_EQ(s->ops[kFlush].ops, 1u);
  // The read: 300 us in ublkd, all of it in the backend; the second write 300 us, 200 in the backend.
  EXPECT_EQ(s->ops[kRead].service[stats::bucketOf(300'000)], 1u);
  EXPECT_EQ(s->ops[kWrite].service[stats::bucketOf(300'000)], 1u);
  EXPECT_EQ(s->ops[kWrite].backend[stats::bucketOf(200'000)], 1u);
  EXPECT_EQ(s->ops[kWrite].serviceNs, 300'000u);  // the failed write took 0
  EXPECT_NEAR(stats::percentile(s->ops[kRead].service, 0.5), 300.0, 300.0 / 16);
}

TEST_F(Statistics, InFlightCountsWhatIsHeld) {
  StatsFile file(openFile(), 1);
  QueueStats q(file.queue(0), 8);
  q.batchBegins(Clock::now());
  for (uint16_t tag = 0; tag < 5; ++tag) q.arrived(tag, request(abi::Op::Read, 8));
  q.committed(0, 4096);
  EXPECT_EQ(stats::readSnapshot(path_)->inFlight, 4u);
}

TEST_F(Statistics, ANewQueueDaemonKeepsTheCountersOfTheSameLayoutAndNotTheInFlight) {
  {
    StatsFile file(openFile(), 2);
    QueueStats q(file.queue(1), 4);
    q.batchBegins(Clock::now());
    q.arrived(0, request(abi::Op::Read, 8));
    q.committed(0, 4096);
    q.arrived(1, request(abi::Op::Read, 8));  // held when the daemon died
  }
  const uint64_t created = stats::readSnapshot(path_)->createdNs;
  {
    StatsFile again(openFile(), 2);
    const auto s = stats::readSnapshot(path_);
    EXPECT_EQ(s->ops[kRead].ops, 1u);
    EXPECT_EQ(s->inFlight, 0u);
    EXPECT_EQ(s->createdNs, created);
  }
  // Another queue count is another device's layout: it starts from zero.
  StatsFile other(openFile(), 3);
  const auto s = stats::readSnapshot(path_);
  EXPECT_EQ(s->queues, 3u);
  EXPECT_EQ(s->ops[kRead].ops, 0u);
}

TEST_F(Statistics, NoFileOrNoLayoutYetIsNoSnapshot) {
  EXPECT_FALSE(stats::readSnapshot(path_).has_value());
  const ublk::UniqueFd empty = openFile();
  EXPECT_FALSE(stats::readSnapshot(path_).has_value());
}

TEST_F(Statistics, RatesCoverTheTimeSinceASampleAtLeastASecondOld) {
  StatsFile file(openFile(), 1);
  QueueStats q(file.queue(0), 64);
  auto serve = [&](int n) {
    q.batchBegins(Clock::now());
    for (int i = 0; i < n; ++i) {
      q.arrived(0, request(abi::Op::Read, 8));
      q.committed(0, 4096);
    }
  };
  stats::History history;
  serve(10);
  auto first = history.report(*stats::readSnapshot(path_));  // over the counters' life
  EXPECT_EQ(first.ops[kRead].ops, 10u);
  serve(30);
  auto soon = *stats::readSnapshot(path_);
  soon.taken = Clock::now() + 1500ms;  // as if taken 1.5 s later
  const stats::Report r = history.report(soon);
  EXPECT_EQ(r.ops[kRead].ops, 40u);
  EXPECT_NEAR(r.interval, 1.5, 0.2);
  EXPECT_NEAR(r.ops[kRead].opsPerSecond, 30 / r.interval, 0.5);
  EXPECT_NEAR(r.ops[kRead].bytesPerSecond, 30 * 4096 / r.interval, 4096);
}

}  // namespace
}  // namespace ublkd
