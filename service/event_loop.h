// EventLoop: the daemon's single-threaded poll loop. File descriptors and timers call back on
// the loop's thread, so the state they touch needs no locks. An external source (the D-Bus
// connection) tells the loop each round which fd to watch and how long it may sleep.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>

namespace ublkd {

class EventLoop {
 public:
  using Callback = std::function<void()>;
  using Clock = std::chrono::steady_clock;
  using TimerId = uint64_t;

  struct External {
    // Returns the fd and events to poll, and the longest sleep it allows (nullopt: forever).
    std::function<std::pair<pollfd, std::optional<Clock::duration>>()> prepare;
    // Runs after every wake-up; does all the work the source has pending.
    Callback dispatch;
  };

  // Level-triggered: `onReady` runs every round while `fd` is ready. One watch per fd.
  void watch(int fd, short events, Callback onReady);
  void unwatch(int fd);
  TimerId after(Clock::duration delay, Callback onExpiry);
  void cancel(TimerId id);
  void setExternal(External external) { external_ = std::move(external); }

  // Runs until stop() is called from a callback.
  void run();
  void stop() { stopping_ = true; }

 private:
  struct Watch {
    short events;
    Callback onReady;
  };
  struct Timer {
    Clock::time_point due;
    Callback onExpiry;
  };

  void runDueTimers();

  std::map<int, Watch> watches_;
  std::map<TimerId, Timer> timers_;
  TimerId nextTimer_ = 1;
  std::optional<External> external_;
  bool stopping_ = false;
};

}  // namespace ublkd
