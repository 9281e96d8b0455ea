// CrashPolicy: what follows the unplanned death of a device's queue daemon: recover at once,
// recover after a backoff, or give up. Modelled on systemd's Restart= with RestartSteps (the delay
// grows while daemons keep dying soon after they start) and StartLimitBurst (too many deaths in a
// window end it). A daemon that served for a while before it died resets the backoff.
#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <string>

namespace ublkd {

class CrashPolicy {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    unsigned burst = 10;  // this many deaths within `within` end recovery (a crash loop)
    std::chrono::seconds within{10};
    // A daemon that never got the device live, or died sooner than this after it did, failed to
    // serve: the next recovery waits firstDelay, doubling up to maxDelay, and after
    // maxQuickDeaths such deaths in a row recovery ends.
    std::chrono::milliseconds quickDeath{1000};
    std::chrono::milliseconds firstDelay{250};
    std::chrono::milliseconds maxDelay{8000};
    unsigned maxQuickDeaths = 6;
  };
  struct Verdict {
    bool giveUp = false;
    std::chrono::milliseconds delay{0};  // before the next recovery
    std::string reason;                  // why recovery ends, when it does
  };

  explicit CrashPolicy(Options options) : options_(options) {}

  // A queue daemon got the device live.
  void live(Clock::time_point now) { liveSince_ = now; }
  // A queue daemon died without being asked to.
  Verdict died(Clock::time_point now);

 private:
  Options options_;
  std::deque<Clock::time_point> deaths_;  // within the burst window
  std::optional<Clock::time_point> liveSince_;
  unsigned quickDeaths_ = 0;  // in a row
};

}  // namespace ublkd
