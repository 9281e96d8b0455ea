// ChildProcess: fork/exec with a status pipe, pidfd watching and reaping.
#include "child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
// glibc 2.36 declares these without C linkage for C++ (fixed in 2.37).
extern "C" {
#include <sys/pidfd.h>
}

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "exec_args.h"
#include "throw_errno.h"

namespace ublkd {

constexpr int kStatusFdInChild = 3;

std::string ChildProcess::Exit::describe() const {
  if (!known) return "exited (status unknown: not started by this ublkd)";
  if (signal != 0) return fmt::format("killed by SIG{}", sigabbrev_np(signal) ? sigabbrev_np(signal) : "?");
  return fmt::format("exited with status {}", code);
}

namespace {

// A close-on-exec duplicate above the fds the child is given, so no dup2 there overwrites another
// source, and dup2 never gets equal fds (which would keep close-on-exec set).
ublk::UniqueFd duplicateHigh(int fd, const char* what) {
  ublk::UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 10));
  if (!copy) ublk::throwErrno(errno, fmt::format("duplicate the {}", what));
  return copy;
}

}  // namespace

ChildProcess ChildProcess::spawn(const std::string& executable, const std::vector<std::string>& argv,
                                 const std::vector<int>& passFds) {
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) ublk::throwErrno(errno, "pipe2 (status pipe)");
  ublk::UniqueFd readEnd(pipeFds[0]);
  const ublk::UniqueFd pipeEnd(pipeFds[1]);
  const ublk::UniqueFd writeEnd = duplicateHigh(pipeEnd.get(), "status pipe");
  std::vector<ublk::UniqueFd> passed;
  for (const int fd : passFds) passed.push_back(fd >= 0 ? duplicateHigh(fd, "fd to pass") : ublk::UniqueFd());
  ublk::UniqueFd devNull(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  if (!devNull) ublk::throwErrno(errno, "open /dev/null");

  const ExecArgs args(argv);

  const pid_t pid = ::fork();
  if (pid < 0) ublk::throwErrno(errno, "fork (queue daemon)");
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec.
    unblockSignalsInChild();
    ::setsid();  // a terminal's Ctrl-C or hangup must not reach the data plane
    if (::dup2(devNull.get(), STDOUT_FILENO) < 0 || ::dup2(writeEnd.get(), kStatusFdInChild) < 0) ::_exit(127);
    for (size_t i = 0; i < passed.size(); ++i) {
      if (passed[i] && ::dup2(passed[i].get(), kPassedFd + static_cast<int>(i)) < 0) ::_exit(127);
    }
    ::execv(executable.c_str(), args.argv());
    ::_exit(127);
  }
  return ChildProcess(pid, childPidfd(pid, "queue daemon"), std::move(readEnd), true);
}

std::optional<ChildProcess> ChildProcess::adopt(pid_t pid) {
  ublk::UniqueFd pidfd(static_cast<int>(::pidfd_open(pid, 0)));
  if (!pidfd) return std::nullopt;
  return ChildProcess(pid, std::move(pidfd), ublk::UniqueFd(), false);
}

void ChildProcess::signal(int sig) const {
  if (::pidfd_send_signal(pidfd_.get(), sig, nullptr, 0) != 0 && errno != ESRCH) {
    ublk::throwErrno(errno, fmt::format("pidfd_send_signal {} to queue daemon {}", sig, pid_));
  }
}

ChildProcess::Exit ChildProcess::reap() {
  Exit exit;
  if (!ours_) return exit;
  siginfo_t info{};
  if (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED) != 0) {
    ublk::throwErrno(errno, fmt::format("waitid (queue daemon {})", pid_));
  }
  exit.known = true;
  if (info.si_code == CLD_EXITED) {
    exit.code = info.si_status;
  } else {
    exit.signal = info.si_status;
  }
  return exit;
}

}  // namespace ublkd
