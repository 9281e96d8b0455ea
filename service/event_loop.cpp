// EventLoop: poll(2) over the watched fds and the external source, then timers.
#include "event_loop.h"

#include <cerrno>
#include <vector>

#include <exception>

#include <fmt/format.h>

#include "log.h"
#include "throw_errno.h"

namespace ublkd {
namespace {

// One failing callback must not stop the daemon and every device with it.
void runGuarded(const EventLoop::Callback& callback) {
  try {
    callback();
  } catch (const std::exception& e) {
    log::error(fmt::format("event handler failed: {}", e.what()));
  }
}

}  // namespace

void EventLoop::watch(int fd, short events, Callback onReady) { watches_[fd] = Watch{events, std::move(onReady)}; }

void EventLoop::unwatch(int fd) { watches_.erase(fd); }

EventLoop::TimerId EventLoop::after(Clock::duration delay, Callback onExpiry) {
  const TimerId id = nextTimer_++;
  timers_[id] = Timer{Clock::now() + delay, std::move(onExpiry)};
  return id;
}

void EventLoop::cancel(TimerId id) { timers_.erase(id); }

void EventLoop::runDueTimers() {
  const auto now = Clock::now();
  std::vector<TimerId> due;
  for (const auto& [id, timer] : timers_) {
    if (timer.due <= now) due.push_back(id);
  }
  for (const TimerId id : due) {
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cancelled by an earlier callback
    Callback onExpiry = std::move(it->second.onExpiry);
    timers_.erase(it);
    runGuarded(onExpiry);
  }
}

void EventLoop::run() {
  stopping_ = false;
  while (!stopping_) {
    if (external_) external_->dispatch();
    if (stopping_) break;

    std::vector<pollfd> fds;
    std::optional<Clock::duration> sleep;
    if (external_) {
      auto [fd, externalSleep] = external_->prepare();
      fds.push_back(fd);
      sleep = externalSleep;
    }
    const size_t firstWatch = fds.size();
    for (const auto& [fd, w] : watches_) fds.push_back({fd, w.events, 0});
    for (const auto& [id, timer] : timers_) {
      const auto untilDue = timer.due - Clock::now();
      if (!sleep || untilDue < *sleep) sleep = untilDue;
    }
    int timeoutMs = -1;
    if (sleep) {
      // Round up, so a timer is never polled for before it is due.
      timeoutMs = static_cast<int>(std::max<int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(*sleep).count()));
    }
    if (::poll(fds.data(), fds.size(), timeoutMs) < 0) {
      if (errno == EINTR) continue;
      ublk::throwErrno(errno, "poll (event loop)");
    }
    for (size_t i = firstWatch; i < fds.size() && !stopping_; ++i) {
      if (fds[i].revents == 0) continue;
      auto it = watches_.find(fds[i].fd);
      if (it == watches_.end()) continue;     // unwatched by an earlier callback
      Callback onReady = it->second.onReady;  // a copy: the callback may unwatch itself
      runGuarded(onReady);
    }
    runDueTimers();
  }
}

}  // namespace ublkd
