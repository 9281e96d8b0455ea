// MappedRegion: sole owner of one mmap; unmapped in the destructor.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <string>
#include <utility>

#include "throw_errno.h"

namespace ublk {

class MappedRegion {
 public:
  MappedRegion() = default;
  // Throws naming `what` and the errno text when the kernel refuses the mapping.
  MappedRegion(size_t length, int prot, int flags, int fd, off_t offset, const std::string& what)
      : length_(length), addr_(::mmap(nullptr, length, prot, flags, fd, offset)) {
    if (addr_ == MAP_FAILED) {
      addr_ = nullptr;
      throwErrno(errno, "mmap " + what);
    }
  }
  MappedRegion(MappedRegion&& other) noexcept
      : length_(std::exchange(other.length_, 0)), addr_(std::exchange(other.addr_, nullptr)) {}
  MappedRegion& operator=(MappedRegion&& other) noexcept {
    if (this != &other) {
      reset();
      length_ = std::exchange(other.length_, 0);
      addr_ = std::exchange(other.addr_, nullptr);
    }
    return *this;
  }
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;
  ~MappedRegion() { reset(); }

  template <typename T>
  T* as() const {
    return static_cast<T*>(addr_);
  }
  size_t size() const { return length_; }

 private:
  void reset() {
    if (addr_ != nullptr) ::munmap(std::exchange(addr_, nullptr), length_);
  }
  size_t length_ = 0;
  void* addr_ = nullptr;
};

}  // namespace ublk
