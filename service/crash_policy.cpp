// CrashPolicy: the burst window, the quick-death streak and its exponential backoff.
#include "crash_policy.h"

#include <algorithm>

#include <fmt/format.h>

namespace ublkd {

CrashPolicy::Verdict CrashPolicy::died(Clock::time_point now) {
  deaths_.push_back(now);
  while (now - deaths_.front() > options_.within) deaths_.pop_front();
  const bool quick = !liveSince_ || now - *liveSince_ < options_.quickDeath;
  liveSince_.reset();
  quickDeaths_ = quick ? quickDeaths_ + 1 : 0;

  if (deaths_.size() >= options_.burst) {
    return {.giveUp = true,
            .reason =
                fmt::format("crash loop: {} queue daemon deaths within {} s", deaths_.size(), options_.within.count())};
  }
  if (quickDeaths_ >= options_.maxQuickDeaths) {
    return {.giveUp = true,
            .delay = {},
            .reason = fmt::format("{} queue daemons in a row died before serving for {} ms", quickDeaths_,
                                  options_.quickDeath.count())};
  }
  if (quickDeaths_ == 0) return {};
  const auto doubled = options_.firstDelay * (1LL << std::min(quickDeaths_ - 1, 20U));
  return {.giveUp = false, .delay = std::min<std::chrono::milliseconds>(doubled, options_.maxDelay), .reason = {}};
}

}  // namespace ublkd
