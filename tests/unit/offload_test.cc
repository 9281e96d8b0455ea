// Offload on a real EventLoop and real threads: answers come back on the loop, and a job past
// its deadline is answered by its timeout while its late result is dropped.
#include "offload.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace ublkd {
namespace {

using namespace std::chrono_literals;

TEST(Offload, AnswerRunsOnTheLoopThread) {
  EventLoop loop;
  Offload offload(loop);
  const auto loopThread = std::this_thread::get_id();
  std::thread::id workedOn;
  std::thread::id answeredOn;
  offload.run(
      [&]() -> Offload::Callback {
        workedOn = std::this_thread::get_id();
        return [&] {
          answeredOn = std::this_thread::get_id();
          loop.stop();
        };
      },
      5000ms,
      [&] {
        ADD_FAILURE() << "timed out";
        loop.stop();
      });
  loop.run();
  EXPECT_NE(workedOn, loopThread);
  EXPECT_EQ(answeredOn, loopThread);
}

TEST(Offload, DeadlineAnswersAndTheLateResultIsDropped) {
  EventLoop loop;
  Offload offload(loop);
  std::promise<void> release;
  auto released = release.get_future().share();
  std::atomic<bool> finished = false;
  bool timedOut = false;
  bool lateAnswer = false;
  offload.run(
      [&, released]() -> Offload::Callback {
        released.wait();  // a hung open()
        finished = true;
        return [&] { lateAnswer = true; };
      },
      50ms,
      [&] {
        timedOut = true;
        release.set_value();
        // Give the worker's late answer a chance to arrive, then stop.
        loop.after(200ms, [&] { loop.stop(); });
      });
  loop.run();
  EXPECT_TRUE(timedOut);
  EXPECT_TRUE(finished);
  EXPECT_FALSE(lateAnswer);
}

}  // namespace
}  // namespace ublkd
