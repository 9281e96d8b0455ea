// Ring: sole owner of one io_uring instance (liburing's struct io_uring), set up in the
// constructor and torn down in the destructor.
#pragma once

#include <liburing.h>

namespace ublk {

class Ring {
 public:
  // Throws std::system_error naming the entry count and setup flags when the kernel refuses.
  Ring(unsigned entries, unsigned setupFlags);
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring();

  io_uring* get() { return &ring_; }
  unsigned setupFlags() const { return ring_.flags; }

 private:
  io_uring ring_{};
};

}  // namespace ublk
