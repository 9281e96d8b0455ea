// ExecArgs: what a fork/exec needs made before the fork, so that the child, which may only make
// async-signal-safe calls, has nothing left to build: argv as execv takes it, and the reset of
// the signal mask the parent keeps (ublkd and its queue daemons block the signals they sigwait for);
// and, after the fork, the child's pidfd.
#pragma once

#include <signal.h>
#include <sys/wait.h>
// glibc 2.36 declares these without C linkage for C++ (fixed in 2.37).
extern "C" {
#include <sys/pidfd.h>
}

#include <cerrno>

#include <string>
#include <vector>

#include "throw_errno.h"
#include "unique_fd.h"

namespace ublkd {

class ExecArgs {
 public:
  explicit ExecArgs(const std::vector<std::string>& argv) {
    for (const auto& arg : argv) pointers_.push_back(const_cast<char*>(arg.c_str()));
    pointers_.push_back(nullptr);
  }
  const char* path() const { return pointers_.front(); }
  char* const* argv() const { return pointers_.data(); }

 private:
  std::vector<char*> pointers_;  // into the caller's strings, which must outlive the exec
};

// In the child, first thing: no signal stays blocked across exec.
inline void unblockSignalsInChild() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// In the parent: the pidfd of the child just forked; without one the child is killed and reaped,
// and the error names `what` ("queue daemon", ...).
inline ublk::UniqueFd childPidfd(pid_t pid, const std::string& what) {
  ublk::UniqueFd pidfd(static_cast<int>(::pidfd_open(pid, 0)));
  if (!pidfd) {
    const int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ublk::throwErrno(err, "pidfd_open (" + what + ")");
  }
  return pidfd;
}

}  // namespace ublkd
