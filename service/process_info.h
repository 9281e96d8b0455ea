// ProcessInfo: what /proc says about another process (a queue daemon): its command line, and
// which of its threads sleep in the kernel uninterruptibly, and where.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace ublkd {

// The argv of process pid, or empty once it is gone.
std::vector<std::string> commandLine(pid_t pid);

// "thread ublkd-q0 in D state at io_uring_cancel_generic, ...": the threads of `pid` asleep in
// the kernel uninterruptibly. Empty when none is (or /proc says nothing).
std::string describeStuckThreads(pid_t pid);

}  // namespace ublkd
