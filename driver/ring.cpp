// Ring: io_uring setup and teardown.
#include "ring.h"

#include <fmt/format.h>

#include "throw_errno.h"

namespace ublk {

Ring::Ring(unsigned entries, unsigned setupFlags) {
  io_uring_params params{};
  params.flags = setupFlags;
  const int ret = io_uring_queue_init_params(entries, &ring_, &params);
  if (ret < 0) throwErrno(-ret, fmt::format("io_uring_setup (entries {}, flags {:#x})", entries, setupFlags));
}

Ring::~Ring() { io_uring_queue_exit(&ring_); }

}  // namespace ublk
