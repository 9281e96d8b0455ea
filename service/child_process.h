// ChildProcess: a queue daemon process as ublkd supervises it: its pidfd (exit is a readable fd,
// signals cannot hit a recycled pid) and the read end of its status pipe (`serve --status-fd 3`).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "unique_fd.h"

namespace ublkd {

class ChildProcess {
 public:
  struct Exit {
    bool known = false;  // false for an adopted process: only its parent learns the status
    int code = 0;
    int signal = 0;
    bool clean() const { return known && signal == 0 && code == 0; }
    std::string describe() const;  // "exited with status 1", "killed by SIGKILL", ...
  };

  // Starts `executable` with argv (argv[0] as given) in its own session with an empty signal mask, stdout on /dev/null,
  // stderr inherited, fd 3 the write end of the status pipe and fd kPassedFd + i a duplicate of passFds[i] (`serve
  // --backing-fd 4 --stats-fd 5`); a negative entry passes nothing at its number. Throws std::system_error.
  static constexpr int kPassedFd = 4;
  static ChildProcess spawn(const std::string& executable, const std::vector<std::string>& argv,
                            const std::vector<int>& passFds = {});
  // Watches a process this one did not start (a queue daemon of an earlier ublkd); nullopt if gone.
  static std::optional<ChildProcess> adopt(pid_t pid);

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  int statusFd() const { return status_.get(); }
  void closeStatus() { status_.reset(); }
  void signal(int sig) const;
  // Once pidfd() is readable: collects the exit (reaps a child; only observes an adopted one).
  Exit reap();

 private:
  ChildProcess(pid_t pid, ublk::UniqueFd pidfd, ublk::UniqueFd status, bool ours)
      : pid_(pid), pidfd_(std::move(pidfd)), status_(std::move(status)), ours_(ours) {}

  pid_t pid_;
  ublk::UniqueFd pidfd_;
  ublk::UniqueFd status_;
  bool ours_;
};

}  // namespace ublkd
