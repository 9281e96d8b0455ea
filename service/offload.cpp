// Offload: one detached thread per job; answers come back through an eventfd the loop watches.
#include "offload.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "log.h"
#include "throw_errno.h"
#include "unique_fd.h"

namespace ublkd {

struct Offload::Mailbox {
  ublk::UniqueFd wakeup{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  std::mutex mutex;
  std::vector<std::pair<uint64_t, Callback>> answers;
};

Offload::Offload(EventLoop& loop) : loop_(loop), mailbox_(std::make_shared<Mailbox>()) {
  if (!mailbox_->wakeup) ublk::throwErrno(errno, "eventfd (offload)");
  loop_.watch(mailbox_->wakeup.get(), POLLIN, [this] { deliver(); });
}

Offload::~Offload() {
  loop_.unwatch(mailbox_->wakeup.get());
  for (const auto& [job, timer] : waiting_) loop_.cancel(timer);
}

void Offload::run(Work work, std::chrono::milliseconds deadline, Callback onTimeout) {
  const uint64_t job = nextJob_++;
  waiting_[job] = loop_.after(deadline, [this, job, onTimeout = std::move(onTimeout)] {
    waiting_.erase(job);
    onTimeout();
  });
  std::thread([mailbox = mailbox_, job, work = std::move(work)] {
    Callback answer = work();
    {
      std::lock_guard lock(mailbox->mutex);
      mailbox->answers.emplace_back(job, std::move(answer));
    }
    const uint64_t one = 1;
    (void)!::write(mailbox->wakeup.get(), &one, sizeof(one));
  }).detach();
}

void Offload::deliver() {
  uint64_t count = 0;
  (void)!::read(mailbox_->wakeup.get(), &count, sizeof(count));
  std::vector<std::pair<uint64_t, Callback>> answers;
  {
    std::lock_guard lock(mailbox_->mutex);
    answers.swap(mailbox_->answers);
  }
  for (auto& [job, answer] : answers) {
    auto it = waiting_.find(job);
    if (it == waiting_.end()) continue;  // too late: its deadline has answered
    loop_.cancel(it->second);
    waiting_.erase(it);
    try {
      if (answer) answer();
    } catch (const std::exception& e) {
      log::error(fmt::format("offloaded work's answer failed: {}", e.what()));
    }
  }
}

}  // namespace ublkd
