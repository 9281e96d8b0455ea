// BackingStore: the file or block device behind a loop device, opened exactly once. The path is
// resolved a single time; what it named is checked before anything opens it for I/O, and the open
// descriptor (not the path) is what the queue daemon serves, so a symlink swapped in later, or a
// block device that replaced a file, is never touched.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "unique_fd.h"

namespace ublkd {

// Which inode a path named: st_dev and st_ino. Recorded, so a path opened again later (by a
// restarted ublkd) can be checked to name the same file.
struct FileIdentity {
  uint64_t device = 0;
  uint64_t inode = 0;
  bool operator==(const FileIdentity&) const = default;
};

class BackingStore {
 public:
  // Resolves `path` once (O_PATH: nothing is opened for real yet), refuses anything but a regular
  // file or a block device, then opens that same inode (through /proc/self/fd, not the path again)
  // for reading, or reading and writing; a block device exclusively (O_EXCL), so a mounted or
  // otherwise held one is refused. Throws SpecError("/path", reason) naming the path and errno.
  static BackingStore open(const std::string& path, bool readOnly);
  // A descriptor open() made in another process (ublkd hands it to its queue daemon); its type is
  // checked again. Throws SpecError("/path", ...).
  static BackingStore fromFd(ublk::UniqueFd fd, const std::string& path);

  int fd() const { return fd_.get(); }
  bool isBlockDevice() const { return blockDevice_; }
  FileIdentity identity() const { return identity_; }
  const std::string& path() const { return path_; }              // as the spec named it
  const std::string& resolvedPath() const { return resolved_; }  // what that named when opened

 private:
  BackingStore(ublk::UniqueFd fd, std::string path);

  ublk::UniqueFd fd_;
  std::string path_;
  std::string resolved_;
  bool blockDevice_ = false;
  FileIdentity identity_;
};

}  // namespace ublkd
