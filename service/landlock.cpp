// Landlock: the ruleset system calls (glibc has no wrappers) and the access rights per ABI.
#include "landlock.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "throw_errno.h"

namespace ublkd {
namespace {

// Rights added after the headers ublkd builds with (Linux 6.2: TRUNCATE).
constexpr uint64_t kTruncate = 1ULL << 14;

constexpr uint64_t kFileRead = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_EXECUTE;
constexpr uint64_t kDirRead = kFileRead | LANDLOCK_ACCESS_FS_READ_DIR;

// Every filesystem right the kernel's ABI knows: all of them are denied unless a rule grants them.
uint64_t handledRights(int abi) {
  uint64_t rights = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;  // ABI 1: EXECUTE .. MAKE_SYM
  if (abi >= 2) rights |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) rights |= kTruncate;
  return rights;
}

int createRuleset(const landlock_ruleset_attr* attr, size_t size, uint32_t flags) {
  return static_cast<int>(::syscall(SYS_landlock_create_ruleset, attr, size, flags));
}

}  // namespace

LandlockPolicy::LandlockPolicy(const Paths& paths) {
  abi_ = createRuleset(nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi_ < 0) {
    if (errno != ENOSYS && errno != EOPNOTSUPP) ublk::throwErrno(errno, "landlock_create_ruleset (version)");
    abi_ = 0;
    return;
  }
  const uint64_t handled = handledRights(abi_);
  const landlock_ruleset_attr attr{.handled_access_fs = handled};
  ruleset_ = ublk::UniqueFd(createRuleset(&attr, sizeof(attr), 0));
  if (!ruleset_) ublk::throwErrno(errno, "landlock_create_ruleset");

  const auto allow = [&](const std::string& path, bool write) {
    const ublk::UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (!fd) {
      if (errno == ENOENT && !write) return;
      ublk::throwErrno(errno, fmt::format("open {} for a Landlock rule", path));
    }
    struct stat status {};
    if (::fstat(fd.get(), &status) != 0) ublk::throwErrno(errno, fmt::format("stat {}", path));
    uint64_t rights = S_ISDIR(status.st_mode) ? kDirRead : kFileRead;
    if (write) rights |= LANDLOCK_ACCESS_FS_WRITE_FILE | (handled & kTruncate);
    const landlock_path_beneath_attr rule{.allowed_access = rights & handled, .parent_fd = fd.get()};
    if (::syscall(SYS_landlock_add_rule, ruleset_.get(), LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0) {
      ublk::throwErrno(errno, fmt::format("landlock_add_rule {}", path));
    }
  };
  for (const std::string& path : paths.readOnly) allow(path, false);
  for (const std::string& path : paths.readWrite) allow(path, true);
}

bool LandlockPolicy::applyInChild() const {
  if (abi_ == 0) return true;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  return ::syscall(SYS_landlock_restrict_self, ruleset_.get(), 0) == 0;
}

}  // namespace ublkd
