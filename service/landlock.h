// Landlock: a filesystem policy for a child process ublkd starts (qemu-storage-daemon): the files
// and directories it may read, and the few it may write. The ruleset is built in the parent, where
// errors can be reported; the child only applies it, between fork and exec (two system calls,
// safe there). A kernel without Landlock leaves the child unconfined, and says so.
#pragma once

#include <string>
#include <vector>

#include "unique_fd.h"

namespace ublkd {

class LandlockPolicy {
 public:
  struct Paths {
    std::vector<std::string> readOnly;   // directories (whole trees) or files: read, and execute
    std::vector<std::string> readWrite;  // files: read and write
  };
  // Builds the ruleset; a path that does not exist is skipped (a /lib64 a system lacks).
  // Throws std::system_error if the kernel has Landlock but refuses a rule.
  explicit LandlockPolicy(const Paths& paths);

  // 0 when the kernel has no Landlock (or it is disabled): applyInChild() then does nothing.
  int abiVersion() const { return abi_; }
  // In the child, after fork and before exec: no new privileges, then the ruleset. Returns false
  // if either call failed (the child should then exit rather than run unconfined).
  bool applyInChild() const;

 private:
  int abi_ = 0;
  ublk::UniqueFd ruleset_;
};

}  // namespace ublkd
