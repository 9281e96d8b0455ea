// BackingStore: one resolution of the backing path, a type check before any real open, and the
// open of that same inode.
#include "backing_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <system_error>

#include <fmt/format.h>

#include "device_spec.h"

namespace ublkd {
namespace {

[[noreturn]] void reject(std::string reason) { throw SpecError("/path", std::move(reason)); }

std::string errnoText(int err) { return std::generic_category().message(err); }

std::string_view fileTypeName(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

struct stat statOf(int fd, const std::string& path) {
  struct stat status {};
  if (::fstat(fd, &status) != 0) reject(fmt::format("cannot stat {}: {}", path, errnoText(errno)));
  if (!S_ISREG(status.st_mode) && !S_ISBLK(status.st_mode)) {
    reject(fmt::format("{} is {}; the backing store must be a regular file or a block device", path,
                       fileTypeName(status.st_mode)));
  }
  return status;
}

// The file an fd refers to, as the kernel names it now ("/dev/vdb" for "/dev/disk/by-id/...").
std::string pathOf(int fd, const std::string& fallback) {
  char target[PATH_MAX];
  const ssize_t n = ::readlink(fmt::format("/proc/self/fd/{}", fd).c_str(), target, sizeof(target));
  return n > 0 && static_cast<size_t>(n) < sizeof(target) ? std::string(target, static_cast<size_t>(n)) : fallback;
}

}  // namespace

BackingStore::BackingStore(ublk::UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {
  const struct stat status = statOf(fd_.get(), path_);
  blockDevice_ = S_ISBLK(status.st_mode);
  identity_ = {.device = status.st_dev, .inode = status.st_ino};
  resolved_ = pathOf(fd_.get(), path_);
}

BackingStore BackingStore::open(const std::string& path, bool readOnly) {
  // O_PATH reads nothing and cannot block: a FIFO, a tty or a tape is refused before it is opened.
  const ublk::UniqueFd handle(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!handle) reject(fmt::format("cannot open {}: {}", path, errnoText(errno)));
  const struct stat status = statOf(handle.get(), path);

  // The magic link reopens the inode the handle holds; the path is not walked a second time.
  const int mode = readOnly ? O_RDONLY : O_RDWR;
  const int exclusive = S_ISBLK(status.st_mode) ? O_EXCL : 0;
  ublk::UniqueFd fd(
      ::open(fmt::format("/proc/self/fd/{}", handle.get()).c_str(), mode | exclusive | O_NOCTTY | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    if (err == EBUSY && exclusive != 0) {
      reject(
          fmt::format("{} is a block device in use: mounted, or held by another driver (device-mapper, md, "
                      "swap, another loop or ublk device)",
                      path));
    }
    if (readOnly) reject(fmt::format("cannot open {} for reading: {}", path, errnoText(err)));
    reject(fmt::format("cannot open {} for reading and writing: {} (set read_only to use it read-only)", path,
                       errnoText(err)));
  }
  BackingStore store(std::move(fd), path);
  if (store.identity_ != FileIdentity{.device = status.st_dev, .inode = status.st_ino}) {
    reject(fmt::format("{} changed while it was being opened", path));
  }
  return store;
}

BackingStore BackingStore::fromFd(ublk::UniqueFd fd, const std::string& path) {
  if (!fd) reject(fmt::format("no open descriptor for {}", path));
  return BackingStore(std::move(fd), path);
}

}  // namespace ublkd
