// ExecArgs: what a fork/exec needs made before the fork, so that the child, which may only make
// async-signal-safe calls, has nothing left to build: argv as execv takes it, and the reset of
// the signal mask the parent keeps (ublkd and its queue daemons block the signals they sigwait for).
#pragma once

#include <signal.h>

#include <string>
#include <vector>

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

}  // namespace ublkd
