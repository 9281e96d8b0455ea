// The loop target: a device backed by a regular file or a block device, served with io_uring
// on the queue's ring (O_DIRECT where the backing store allows it).
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "abi.h"
#include "mapped_region.h"
#include "target.h"
#include "unique_fd.h"

namespace ublkd {
namespace {

using ublk::abi::IoDesc;
using ublk::abi::Op;

constexpr int kBackingFixedFile = 1;  // the target's only fd, after the char device

// kZeroRange and kZeroPunch are the two tries of a write-zeroes that keeps blocks allocated.
enum LoopOp : uint8_t { kReadWrite = 1, kSync = 2, kFuaSync = 3, kZeroRange = 4, kZeroPunch = 5 };

struct Backing {
  ublk::UniqueFd fd;
  bool blockDevice = false;
  bool direct = false;
  uint64_t sizeBytes = 0;
  uint32_t logicalBlock = 512;
  uint32_t physicalBlock = 4096;
};

[[noreturn]] void rejectPath(const DeviceSpec& spec, const std::string& what, int err) {
  throw SpecError("/path", fmt::format("cannot {} {}: {}", what, spec.path, std::strerror(err)));
}

// Opens the backing store: O_DIRECT unless the spec says otherwise, falling back to buffered
// I/O when the filesystem refuses it and the spec did not insist.
Backing openBacking(const DeviceSpec& spec) {
  const int mode = spec.readOnly ? O_RDONLY : O_RDWR;
  Backing backing;
  const bool tryDirect = spec.directIo.value_or(true);
  int fd = tryDirect ? ::open(spec.path.c_str(), mode | O_DIRECT | O_CLOEXEC) : -1;
  if (fd >= 0) {
    backing.direct = true;
  } else {
    if (tryDirect && errno != EINVAL) rejectPath(spec, "open", errno);
    if (spec.directIo.value_or(false)) {
      throw SpecError("/direct_io", fmt::format("{} does not support O_DIRECT", spec.path));
    }
    fd = ::open(spec.path.c_str(), mode | O_CLOEXEC);
    if (fd < 0) rejectPath(spec, "open", errno);
  }
  backing.fd = ublk::UniqueFd(fd);

  struct stat st {};
  if (::fstat(fd, &st) != 0) rejectPath(spec, "stat", errno);
  if (S_ISBLK(st.st_mode)) {
    backing.blockDevice = true;
    int logical = 0;
    unsigned physical = 0;
    if (::ioctl(fd, BLKGETSIZE64, &backing.sizeBytes) != 0 || ::ioctl(fd, BLKSSZGET, &logical) != 0 ||
        ::ioctl(fd, BLKPBSZGET, &physical) != 0) {
      rejectPath(spec, "read the geometry of", errno);
    }
    backing.logicalBlock = static_cast<uint32_t>(logical);
    backing.physicalBlock = physical;
  } else if (S_ISREG(st.st_mode)) {
    backing.sizeBytes = static_cast<uint64_t>(st.st_size);
    backing.physicalBlock = static_cast<uint32_t>(std::max<blksize_t>(st.st_blksize, 512));
  } else {
    throw SpecError("/path", fmt::format("{} is neither a regular file nor a block device", spec.path));
  }
  return backing;
}

Geometry geometryFor(const DeviceSpec& spec, const Backing& backing) {
  const uint32_t logical = spec.blockSize.value_or(backing.logicalBlock);
  if (logical < backing.logicalBlock) {
    throw SpecError("/block_size", fmt::format("{} is smaller than the logical block size of {} ({})", logical,
                                               spec.path, backing.logicalBlock));
  }
  const uint64_t size = spec.size.value_or(backing.sizeBytes / logical * logical);
  if (size > backing.sizeBytes) {
    throw SpecError("/size", fmt::format("{} bytes is larger than {} ({} bytes)", size, spec.path, backing.sizeBytes));
  }
  if (size == 0) throw SpecError("/path", fmt::format("{} is smaller than one block", spec.path));
  return {.sizeBytes = size,
          .logicalBlock = logical,
          .physicalBlock = std::max(backing.physicalBlock, logical),
          .readOnly = spec.readOnly,
          .discard = !spec.readOnly,
          .volatileCache = true};
}

// One request's progress; a short transfer is resubmitted for the rest.
struct Transfer {
  std::byte* buffer = nullptr;
  uint64_t offset = 0;
  uint32_t length = 0;
  uint32_t done = 0;
  bool write = false;
  bool fua = false;
};

// With `mapping` (buffered backing, DataPath::HandlerMapped) the kernel copies request data
// straight to and from the backing file's page cache through that mapping, so READ and WRITE
// need no I/O of their own; otherwise they are io_uring reads and writes of the tag's buffer.
class LoopHandler final : public ublk::RequestHandler {
 public:
  LoopHandler(uint16_t depth, int backingFd, bool blockDevice, std::byte* mapping)
      : transfers_(depth), backingFd_(backingFd), blockDevice_(blockDevice), mapping_(mapping) {}

  std::byte* dataAddress(const IoDesc& desc) override {
    return mapping_ == nullptr ? nullptr : mapping_ + (desc.start_sector << 9);
  }

  int start(ublk::SqeSource& queue, uint16_t tag, const IoDesc& desc, std::byte* buffer) override {
    const uint64_t offset = desc.start_sector << 9;
    const uint32_t length = desc.nr_sectors << 9;
    const bool fua = (desc.op_flags & ublk::abi::ioflag::kFua) != 0;
    switch (ublk::abi::opOf(desc)) {
      case Op::Read:
      case Op::Write:
        if (mapping_ != nullptr) return finishMapped(queue, tag, length, ublk::abi::opOf(desc) == Op::Write && fua);
        transfers_[tag] = {.buffer = buffer,
                           .offset = offset,
                           .length = length,
                           .write = ublk::abi::opOf(desc) == Op::Write,
                           .fua = fua};
        submitTransfer(queue, tag);
        return ublk::kPending;
      case Op::Flush:
        return fdatasync(queue, tag, kSync);
      case Op::Discard:
        return discard(queue, tag, offset, length);
      case Op::WriteZeroes:
        if ((desc.op_flags & ublk::abi::ioflag::kNoUnmap) == 0) {
          return fallocate(queue, tag, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
        }
        transfers_[tag] = {.offset = offset, .length = length};
        return fallocate(queue, tag, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length, kZeroRange);
      default:
        return -EOPNOTSUPP;
    }
  }

  int complete(ublk::SqeSource& queue, uint16_t tag, uint8_t op, int res) override {
    if (op == kFuaSync) return res < 0 ? res : static_cast<int>(transfers_[tag].length);
    // Filesystems without ZERO_RANGE (tmpfs, for one): punch a hole, then allocate it again, so
    // the range reads as zeros and stays allocated as NOUNMAP asks.
    if (op == kZeroRange && res == -EOPNOTSUPP) {
      const Transfer& t = transfers_[tag];
      return fallocate(queue, tag, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, t.offset, t.length, kZeroPunch);
    }
    if (op == kZeroPunch && res == 0) {
      const Transfer& t = transfers_[tag];
      return fallocate(queue, tag, FALLOC_FL_KEEP_SIZE, t.offset, t.length);
    }
    if (op != kReadWrite) return res < 0 ? res : 0;
    if (res < 0) return res;
    Transfer& t = transfers_[tag];
    if (res == 0) return -EIO;  // past the end of the backing store
    t.done += static_cast<uint32_t>(res);
    if (t.done < t.length) {
      submitTransfer(queue, tag);
      return ublk::kPending;
    }
    return static_cast<int>(t.length);
  }

 private:
  // io_uring_prep_* clear sqe->flags, so the fixed-file flag goes on after them.
  static void onBacking(io_uring_sqe* sqe) { sqe->flags |= IOSQE_FIXED_FILE; }

  static int fdatasync(ublk::SqeSource& queue, uint16_t tag, uint8_t op) {
    io_uring_sqe* sqe = queue.targetSqe(tag, op);
    io_uring_prep_fsync(sqe, kBackingFixedFile, IORING_FSYNC_DATASYNC);
    onBacking(sqe);
    return ublk::kPending;
  }

  static int fallocate(ublk::SqeSource& queue, uint16_t tag, int mode, uint64_t offset, uint32_t length,
                       uint8_t op = kSync) {
    io_uring_sqe* sqe = queue.targetSqe(tag, op);
    io_uring_prep_fallocate(sqe, kBackingFixedFile, mode, offset, length);
    onBacking(sqe);
    return ublk::kPending;
  }

  // The data already moved through the mapping; a FUA write must still reach stable storage.
  int finishMapped(ublk::SqeSource& queue, uint16_t tag, uint32_t length, bool fua) {
    if (!fua) return static_cast<int>(length);
    transfers_[tag].length = length;
    return fdatasync(queue, tag, kFuaSync);
  }

  void submitTransfer(ublk::SqeSource& queue, uint16_t tag) {
    const Transfer& t = transfers_[tag];
    io_uring_sqe* sqe = queue.targetSqe(tag, kReadWrite);
    if (t.write) {
      io_uring_prep_write(sqe, kBackingFixedFile, t.buffer + t.done, t.length - t.done, t.offset + t.done);
      if (t.fua) sqe->rw_flags = RWF_DSYNC;
    } else {
      io_uring_prep_read(sqe, kBackingFixedFile, t.buffer + t.done, t.length - t.done, t.offset + t.done);
    }
    onBacking(sqe);
  }

  // A file gets a hole punched through io_uring. A block device gets BLKDISCARD, which io_uring
  // cannot carry on every kernel we support; it is synchronous but discards are rare and short.
  int discard(ublk::SqeSource& queue, uint16_t tag, uint64_t offset, uint32_t length) {
    if (blockDevice_) {
      const uint64_t range[2] = {offset, length};
      return ::ioctl(backingFd_, BLKDISCARD, &range) == 0 ? 0 : -errno;
    }
    return fallocate(queue, tag, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
  }

  std::vector<Transfer> transfers_;
  int backingFd_;
  bool blockDevice_;
  std::byte* mapping_;
};

class LoopTarget final : public Target {
 public:
  explicit LoopTarget(const DeviceSpec& spec) : backing_(openBacking(spec)), geometry_(geometryFor(spec, backing_)) {
    if (!backing_.direct) {
      const int prot = geometry_.readOnly ? PROT_READ : PROT_READ | PROT_WRITE;
      mapping_ = ublk::MappedRegion(geometry_.sizeBytes, prot, MAP_SHARED, backing_.fd.get(), 0, spec.path);
    }
  }
  std::string_view name() const override { return "loop"; }
  Geometry geometry() const override { return geometry_; }
  std::vector<int> files() const override { return {backing_.fd.get()}; }
  // Buffered backing: one copy, request <-> page cache, as the kernel's own loop driver does.
  ublk::DataPath preferredDataPath() const override {
    return backing_.direct ? ublk::DataPath::Copy : ublk::DataPath::HandlerMapped;
  }
  std::unique_ptr<ublk::RequestHandler> makeHandler(uint16_t, uint16_t depth, ublk::DataPath path) override {
    // Only a buffered backing has a mapping; without one every path is served as Copy.
    std::byte* mapping = path == ublk::DataPath::HandlerMapped ? mapping_.as<std::byte>() : nullptr;
    return std::make_unique<LoopHandler>(depth, backing_.fd.get(), backing_.blockDevice, mapping);
  }

 private:
  Backing backing_;
  Geometry geometry_;
  ublk::MappedRegion mapping_;
};

}  // namespace

std::unique_ptr<Target> makeLoopTarget(const DeviceSpec& spec) { return std::make_unique<LoopTarget>(spec); }

}  // namespace ublkd
