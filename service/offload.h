// Offload: work that may block in the kernel (an open() on a hung filesystem, the last close of
// a block device whose writeback hangs) runs on a thread of its own, never on the event loop.
// The work returns what to do next, which runs on the loop; a job past its deadline is answered
// by `onTimeout` instead, and its thread is left to finish (or hang) alone, its late answer
// dropped.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include "event_loop.h"

namespace ublkd {

class Offload {
 public:
  using Callback = EventLoop::Callback;
  // Runs on the worker thread; must not throw. Its result runs on the loop.
  using Work = std::function<Callback()>;

  explicit Offload(EventLoop& loop);
  ~Offload();
  Offload(const Offload&) = delete;
  Offload& operator=(const Offload&) = delete;

  void run(Work work, std::chrono::milliseconds deadline, Callback onTimeout);

 private:
  struct Mailbox;  // shared with the workers, which may outlive this object

  void deliver();

  EventLoop& loop_;
  std::shared_ptr<Mailbox> mailbox_;
  uint64_t nextJob_ = 1;
  std::map<uint64_t, EventLoop::TimerId> waiting_;  // jobs whose answer is still wanted
};

}  // namespace ublkd
