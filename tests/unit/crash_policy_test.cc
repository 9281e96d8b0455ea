// CrashPolicy: immediate recovery after a daemon that served, a doubling backoff while daemons die
// soon after they start, and the two limits that end recovery. Time is passed in, so no test waits.
#include "crash_policy.h"

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using ublkd::CrashPolicy;

class CrashPolicyTest : public testing::Test {
 protected:
  // A daemon that gets the device live and dies `uptime` later.
  CrashPolicy::Verdict serveThenDie(std::chrono::milliseconds uptime) {
    policy_.live(now_);
    now_ += uptime;
    return policy_.died(now_);
  }
  CrashPolicy::Verdict dieBeforeLive(std::chrono::milliseconds after) {
    now_ += after;
    return policy_.died(now_);
  }

  CrashPolicy policy_{CrashPolicy::Options{}};
  CrashPolicy::Clock::time_point now_{};
};

TEST_F(CrashPolicyTest, ADaemonThatServedIsRecoveredAtOnce) {
  const auto verdict = serveThenDie(30s);
  EXPECT_FALSE(verdict.giveUp);
  EXPECT_EQ(verdict.delay, 0ms);
}

TEST_F(CrashPolicyTest, DaemonsDyingRightAfterRecoveryBackOffThenGiveUp) {
  EXPECT_EQ(serveThenDie(60s).delay, 0ms);  // the first crash: at once
  const std::chrono::milliseconds expected[] = {250ms, 500ms, 1000ms, 2000ms, 4000ms};
  for (const auto delay : expected) {
    now_ += 1s;  // the backoff (and more) passes before the next daemon starts
    const auto verdict = serveThenDie(100ms);
    ASSERT_FALSE(verdict.giveUp);
    EXPECT_EQ(verdict.delay, delay);
  }
  const auto last = serveThenDie(100ms);
  EXPECT_TRUE(last.giveUp);
  EXPECT_EQ(last.reason, "6 queue daemons in a row died before serving for 1000 ms");
}

TEST_F(CrashPolicyTest, ADaemonThatNeverGotLiveCountsAsQuick) {
  EXPECT_EQ(dieBeforeLive(10s).delay, 250ms);
  EXPECT_EQ(dieBeforeLive(10s).delay, 500ms);
}

TEST_F(CrashPolicyTest, ADaemonThatServesAgainResetsTheBackoff) {
  (void)serveThenDie(100ms);
  (void)serveThenDie(100ms);
  EXPECT_EQ(serveThenDie(5s).delay, 0ms);
  EXPECT_EQ(serveThenDie(100ms).delay, 250ms);
}

TEST_F(CrashPolicyTest, TheDelayStopsGrowingAtTheMaximum) {
  CrashPolicy patient(CrashPolicy::Options{.burst = 100, .within = 1s, .maxQuickDeaths = 100});
  CrashPolicy::Verdict verdict;
  for (int i = 0; i < 30; ++i) verdict = patient.died(now_ += 20s);
  EXPECT_FALSE(verdict.giveUp);
  EXPECT_EQ(verdict.delay, 8000ms);
}

// Daemons that each serve a little (recovery_fio kills one every 2 s) are recovered at once until
// the burst limit: 10 deaths within 10 s.
TEST_F(CrashPolicyTest, ManyDeathsWithinTheWindowAreACrashLoop) {
  for (int i = 0; i < 9; ++i) {
    const auto verdict = serveThenDie(1100ms);
    ASSERT_FALSE(verdict.giveUp) << "death " << i + 1;
    EXPECT_EQ(verdict.delay, 0ms);
  }
  const auto verdict = serveThenDie(1100ms);
  EXPECT_TRUE(verdict.giveUp);
  EXPECT_EQ(verdict.reason, "crash loop: 10 queue daemon deaths within 10 s");
}

TEST_F(CrashPolicyTest, DeathsOlderThanTheWindowAreForgotten) {
  for (int i = 0; i < 100; ++i) ASSERT_FALSE(serveThenDie(2s).giveUp) << "death " << i + 1;
}

}  // namespace
