// The loop target: a device backed by a regular file or a block device, served with io_uring
// on the queue's ring (O_DIRECT where the backing store allows it). Its geometry comes from the
// backing store: the logical block is at least the O_DIRECT alignment, and DISCARD is advertised
// only where the backing can discard.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string_view>
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

// The block layer's asynchronous discard (IORING_OP_URING_CMD on a block device, Linux 6.12), from
// <linux/blkdev.h>, which older kernel headers lack. Before 6.12 the command fails with EOPNOTSUPP.
constexpr uint32_t kBlockUringCmdDiscard = _IO(0x12, 0);

// A buffered device's daemon maps the whole backing file, and the kernel's copies map its pages
// in. After every kCheckAfterBytes through the mapping a queue looks at the daemon's resident size
// (/proc/self/statm) and, above kMaxResidentBytes, unmaps the file's pages from the daemon, so its
// resident size stays bounded whatever the file's size. The pages stay in the page cache (dirty
// ones too: a shared mapping hands its dirty bits to the pages); a working set below the bound
// is never unmapped, so it costs no faults.
constexpr uint64_t kCheckAfterBytes = 64 << 20;
constexpr uint64_t kMaxResidentBytes = 128 << 20;

// The resident size of this process in bytes, or 0 if /proc says nothing.
uint64_t residentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t sizePages = 0;
  uint64_t residentPages = 0;
  statm >> sizePages >> residentPages;
  return residentPages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

// Written zeros, the last resort of a WRITE_ZEROES, go out in pieces of this size.
constexpr uint32_t kZeroChunk = 1 << 20;

// The steps of one request. WRITE_ZEROES tries, in turn: punch a hole (where unmapping is
// allowed), zero the range, punch and allocate again (NOUNMAP: the blocks stay allocated), write zeros.
enum LoopOp : uint8_t {
  kReadWrite = 1,
  kSync,
  kFuaSync,
  kDiscardCmd,
  kDiscardPunch,
  kZeroPunchFirst,
  kZeroRange,
  kZeroPunch,
  kZeroAllocate,
  kZeroWrite,
};

struct Backing {
  BackingStore store;
  bool direct = false;
  uint64_t sizeBytes = 0;
  uint32_t minBlock = 512;  // the smallest logical block the device may have
  uint32_t physicalBlock = 4096;
  uint32_t memoryAlignment = 0;  // O_DIRECT's alignment of memory; 0 = none (buffered)
  bool discard = false;
  uint32_t discardGranularity = 0;
  uint64_t maxDiscardBytes = 0;
};

[[noreturn]] void rejectPath(const Backing& backing, const std::string& what, int err) {
  throw SpecError("/path", fmt::format("cannot {} {}: {}", what, backing.store.path(), std::strerror(err)));
}

// Turns O_DIRECT on or off on the open file; false if the filesystem cannot do it (EINVAL).
bool setDirect(const Backing& backing, bool on) {
  const int fd = backing.store.fd();
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) rejectPath(backing, "read the flags of", errno);
  if (::fcntl(fd, F_SETFL, on ? flags | O_DIRECT : flags & ~O_DIRECT) == 0) return true;
  if (errno != EINVAL) rejectPath(backing, on ? "set O_DIRECT on" : "clear O_DIRECT on", errno);
  return false;
}

// The offset and memory alignment O_DIRECT needs on this file or block device (statx
// STATX_DIOALIGN: files since Linux 6.1, block devices since 6.11); 512 where nobody says.
struct DirectIoAlignment {
  uint32_t offset = 512;
  uint32_t memory = 512;
};
DirectIoAlignment directIoAlignment(const Backing& backing) {
  struct statx info {};
  if (::statx(backing.store.fd(), "", AT_EMPTY_PATH, STATX_DIOALIGN, &info) != 0 ||
      (info.stx_mask & STATX_DIOALIGN) == 0 || info.stx_dio_offset_align == 0) {
    return {};
  }
  return {.offset = std::max<uint32_t>(info.stx_dio_offset_align, 512),
          .memory = std::max<uint32_t>(info.stx_dio_mem_align, 1)};
}

// A number from the block device's queue directory in sysfs (a partition's is its disk's), or 0.
uint64_t queueLimit(dev_t device, const char* name) {
  for (const char* dir : {"queue", "../queue"}) {
    std::ifstream in(fmt::format("/sys/dev/block/{}:{}/{}/{}", major(device), minor(device), dir, name));
    uint64_t value = 0;
    if (in >> value) return value;
  }
  return 0;
}

void inspectBlockDevice(Backing& backing) {
  const int fd = backing.store.fd();
  int logical = 0;
  unsigned physical = 0;
  if (::ioctl(fd, BLKGETSIZE64, &backing.sizeBytes) != 0 || ::ioctl(fd, BLKSSZGET, &logical) != 0 ||
      ::ioctl(fd, BLKPBSZGET, &physical) != 0) {
    rejectPath(backing, "read the geometry of", errno);
  }
  backing.minBlock = static_cast<uint32_t>(logical);
  backing.physicalBlock = physical;
  struct stat status {};
  if (::fstat(fd, &status) != 0) rejectPath(backing, "stat", errno);
  backing.maxDiscardBytes = queueLimit(status.st_rdev, "discard_max_bytes");
  backing.discard = backing.maxDiscardBytes != 0;
  backing.discardGranularity = static_cast<uint32_t>(queueLimit(status.st_rdev, "discard_granularity"));
}

// Whether the file's filesystem can punch holes: a hole punched past the end of the file changes
// no data, and filesystems without the mode say EOPNOTSUPP.
bool canPunchHoles(const Backing& backing, uint32_t blockBytes) {
  const uint64_t pastEnd = (backing.sizeBytes + blockBytes - 1) / blockBytes * blockBytes + blockBytes;
  return ::fallocate(backing.store.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(pastEnd),
                     blockBytes) == 0;
}

void inspectFile(Backing& backing, bool writable) {
  struct stat status {};
  if (::fstat(backing.store.fd(), &status) != 0) rejectPath(backing, "stat", errno);
  backing.sizeBytes = static_cast<uint64_t>(status.st_size);
  backing.physicalBlock = static_cast<uint32_t>(std::max<blksize_t>(status.st_blksize, 512));
  backing.discard = writable && canPunchHoles(backing, backing.physicalBlock);
  backing.discardGranularity = backing.physicalBlock;
  backing.maxDiscardBytes = UINT32_MAX;
}

// Serves the backing store O_DIRECT unless the spec says otherwise, falling back to buffered I/O
// when the filesystem refuses it, or when the spec's block size is below O_DIRECT's alignment,
// and the spec did not insist.
void chooseDirectIo(const DeviceSpec& spec, Backing& backing) {
  const bool insist = spec.directIo.value_or(false);
  if (spec.directIo.value_or(true) && setDirect(backing, true)) {
    const DirectIoAlignment dio = directIoAlignment(backing);
    const uint32_t alignment = backing.store.isBlockDevice() ? backing.minBlock : dio.offset;
    if (!spec.blockSize || *spec.blockSize >= alignment) {
      backing.direct = true;
      backing.minBlock = std::max(backing.minBlock, alignment);
      backing.memoryAlignment = dio.memory;
      return;
    }
    if (insist) {
      throw SpecError("/block_size",
                      fmt::format("{} is smaller than the O_DIRECT alignment of {} ({} bytes); use a block_size of at "
                                  "least {}, or direct_io false",
                                  *spec.blockSize, spec.path, alignment, alignment));
    }
  } else if (insist) {
    throw SpecError("/direct_io", fmt::format("{} does not support O_DIRECT", spec.path));
  }
  setDirect(backing, false);
}

Backing inspect(const DeviceSpec& spec, BackingStore store) {
  Backing backing{.store = std::move(store)};
  if (backing.store.isBlockDevice()) {
    inspectBlockDevice(backing);
  } else {
    inspectFile(backing, !spec.readOnly);
  }
  chooseDirectIo(spec, backing);
  return backing;
}

Geometry geometryFor(const DeviceSpec& spec, const Backing& backing) {
  const uint32_t logical = spec.blockSize.value_or(backing.minBlock);
  if (logical < backing.minBlock) {
    throw SpecError("/block_size", fmt::format("{} is smaller than the logical block size of {} ({})", logical,
                                               spec.path, backing.minBlock));
  }
  const uint64_t size = spec.size.value_or(backing.sizeBytes / logical * logical);
  if (size > backing.sizeBytes) {
    throw SpecError("/size", fmt::format("{} bytes is larger than {} ({} bytes)", size, spec.path, backing.sizeBytes));
  }
  if (size == 0) throw SpecError("/path", fmt::format("{} is smaller than one block", spec.path));
  if (size % logical != 0) {
    throw SpecError("/size",
                    fmt::format("{} bytes is not a multiple of the logical block size ({} bytes)", size, logical));
  }
  return {.sizeBytes = size,
          .logicalBlock = logical,
          .physicalBlock = std::max(backing.physicalBlock, logical),
          .readOnly = spec.readOnly,
          .discard = !spec.readOnly && backing.discard,
          .writeZeroes = !spec.readOnly,
          .discardGranularity = std::max(backing.discardGranularity, logical),
          .maxDiscardSectors = static_cast<uint32_t>(std::min<uint64_t>(backing.maxDiscardBytes, UINT32_MAX) >> 9),
          .volatileCache = true,
          .dmaAlignment = backing.memoryAlignment};
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

// Whether to look for page-cache misses before a request: on every request while checks find
// misses, and once kQuietChecks checks in a row found none, on one request in kSampleEvery,
// until a check finds a miss again. A warm cache pays for 1 check in 64; a request that misses
// unchecked is still served right, through the mapping (a page fault in the queue thread).
class MissSampler {
 public:
  bool check() { return quiet_ < kQuietChecks || ++skipped_ % kSampleEvery == 0; }
  // The result of a check (true: every page cached); returns it.
  bool saw(bool cached) {
    quiet_ = cached ? std::min(quiet_ + 1, kQuietChecks) : 0;
    return cached;
  }

 private:
  static constexpr uint32_t kQuietChecks = 1024;
  static constexpr uint32_t kSampleEvery = 64;
  uint32_t quiet_ = 0;
  uint32_t skipped_ = 0;
};

// With `mapping` (buffered backing, DataPath::HandlerMapped) the kernel copies request data
// straight to and from the backing file's page cache through that mapping, so READ and WRITE
// need no I/O of their own; otherwise they are io_uring reads and writes of the tag's buffer, or
// (`zeroCopy`, DataPath::ZeroCopy) of the request's own pages, fixed buffer `tag` of the ring.
// With `checkMisses` (a backing on a disk) a mapped READ or WRITE whose pages are not all in the
// page cache goes through the ring instead, into or out of a buffer of the tag's: the queue
// thread would otherwise take the miss as a page fault inside the kernel's copy and wait for the
// disk, one miss at a time, while io_uring reads misses in parallel. The check (a mincore call)
// cost a warm cache up to 46% of its IOPS in our guests, so MissSampler makes it only while
// misses occur.
class LoopHandler final : public ublk::RequestHandler {
 public:
  LoopHandler(uint16_t depth, bool blockDevice, bool zeroCopy, std::byte* mapping, size_t mappingBytes,
              bool checkMisses, const std::byte* zeros)
      : transfers_(depth),
        missed_(depth, false),
        blockDevice_(blockDevice),
        zeroCopy_(zeroCopy),
        mapping_(mapping),
        mappingBytes_(mappingBytes),
        checkMisses_(checkMisses),
        zeros_(zeros) {}

  std::byte* dataAddress(uint16_t tag, const IoDesc& desc) override {
    if (mapping_ == nullptr) return nullptr;
    const uint64_t offset = desc.start_sector << 9;
    const Op op = ublk::abi::opOf(desc);
    missed_[tag] = checkMisses_ && (op == Op::Read || op == Op::Write) && missSampler_.check() &&
                   !missSampler_.saw(cached(offset, desc.nr_sectors << 9));
    return missed_[tag] ? missBuffer(tag) : mapping_ + offset;
  }

  int start(ublk::SqeSource& queue, uint16_t tag, const IoDesc& desc, std::byte* buffer) override {
    const uint64_t offset = desc.start_sector << 9;
    const uint32_t length = desc.nr_sectors << 9;
    const bool fua = (desc.op_flags & ublk::abi::ioflag::kFua) != 0;
    switch (ublk::abi::opOf(desc)) {
      case Op::Read:
      case Op::Write:
        if (mapping_ != nullptr && !missed_[tag]) {
          return finishMapped(queue, tag, length, ublk::abi::opOf(desc) == Op::Write && fua);
        }
        transfers_[tag] = {.buffer = buffer,
                           .offset = offset,
                           .length = length,
                           .write = ublk::abi::opOf(desc) == Op::Write,
                           .fua = fua};
        submitTransfer(queue, tag, kReadWrite);
        return ublk::kPending;
      case Op::Flush:
        return fdatasync(queue, tag, kSync);
      case Op::Discard:
        transfers_[tag] = {.offset = offset, .length = length};
        if (blockDevice_ && uringDiscard_) return discardCommand(queue, tag);
        return fallocate(queue, tag, kDiscardPunch, FALLOC_FL_PUNCH_HOLE);
      case Op::WriteZeroes:
        transfers_[tag] = {.offset = offset, .length = length};
        if ((desc.op_flags & ublk::abi::ioflag::kNoUnmap) == 0) {
          return fallocate(queue, tag, kZeroPunchFirst, FALLOC_FL_PUNCH_HOLE);
        }
        return fallocate(queue, tag, kZeroRange, FALLOC_FL_ZERO_RANGE);
      default:
        return -EOPNOTSUPP;
    }
  }

  int complete(ublk::SqeSource& queue, uint16_t tag, uint8_t op, int res) override {
    const bool unsupported = res == -EOPNOTSUPP;
    switch (op) {
      case kReadWrite:
      case kZeroWrite:
        return transferred(queue, tag, op, res);
      case kFuaSync:
        return res < 0 ? res : static_cast<int>(transfers_[tag].length);
      case kDiscardCmd:
        if (!unsupported && res != -EINVAL) return res < 0 ? res : 0;
        uringDiscard_ = false;  // a kernel before 6.12: punch the range instead
        return fallocate(queue, tag, kDiscardPunch, FALLOC_FL_PUNCH_HOLE);
      case kDiscardPunch:
        return unsupported ? 0 : std::min(res, 0);  // a discard that did nothing is still a discard
      case kZeroPunchFirst:
        return unsupported ? fallocate(queue, tag, kZeroRange, FALLOC_FL_ZERO_RANGE) : std::min(res, 0);
      case kZeroRange:
        // Filesystems without ZERO_RANGE (tmpfs, for one): punch a hole, then allocate it again.
        return unsupported ? fallocate(queue, tag, kZeroPunch, FALLOC_FL_PUNCH_HOLE) : std::min(res, 0);
      case kZeroPunch:
        if (unsupported) return writeZeros(queue, tag);
        return res < 0 ? res : fallocate(queue, tag, kZeroAllocate, 0);
      case kZeroAllocate:
        return unsupported ? 0 : std::min(res, 0);  // the range reads as zeros either way
      default:
        return std::min(res, 0);
    }
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

  // FALLOC_FL_KEEP_SIZE is always added: nothing here grows the backing store.
  int fallocate(ublk::SqeSource& queue, uint16_t tag, uint8_t op, int mode) {
    const Transfer& t = transfers_[tag];
    io_uring_sqe* sqe = queue.targetSqe(tag, op);
    io_uring_prep_fallocate(sqe, kBackingFixedFile, mode | FALLOC_FL_KEEP_SIZE, t.offset, t.length);
    onBacking(sqe);
    return ublk::kPending;
  }

  int discardCommand(ublk::SqeSource& queue, uint16_t tag) {
    const Transfer& t = transfers_[tag];
    io_uring_sqe* sqe = queue.targetSqe(tag, kDiscardCmd);
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, kBackingFixedFile, nullptr, 0, 0);
    sqe->cmd_op = kBlockUringCmdDiscard;
    sqe->addr = t.offset;
    sqe->addr3 = t.length;
    onBacking(sqe);
    return ublk::kPending;
  }

  int writeZeros(ublk::SqeSource& queue, uint16_t tag) {
    Transfer& t = transfers_[tag];
    t.write = true;
    t.done = 0;
    submitTransfer(queue, tag, kZeroWrite);
    return ublk::kPending;
  }

  // The data already moved through the mapping (READ data moves once this returns, at the commit;
  // should the pages have been unmapped by then, the kernel's copy maps them again); a FUA write
  // must still reach stable storage.
  int finishMapped(ublk::SqeSource& queue, uint16_t tag, uint32_t length, bool fua) {
    mappedBytes_ += length;
    if (mappedBytes_ >= kCheckAfterBytes) {
      mappedBytes_ = 0;
      // Failing, it leaves the pages mapped: a larger resident size, never wrong data.
      if (residentBytes() > kMaxResidentBytes) (void)::madvise(mapping_, mappingBytes_, MADV_DONTNEED);
    }
    if (!fua) return static_cast<int>(length);
    transfers_[tag].length = length;
    return fdatasync(queue, tag, kFuaSync);
  }

  // Whether every page of [offset, offset + length) of the file is in the page cache (mincore
  // answers from the page cache for pages this process has not mapped). An error says no: the
  // ring then reads or writes the range, which is right either way.
  bool cached(uint64_t offset, uint32_t length) {
    const uint64_t first = offset / pageBytes_ * pageBytes_;
    const uint64_t end =
        std::min<uint64_t>((offset + length + pageBytes_ - 1) / pageBytes_ * pageBytes_, mappingBytes_);
    if (end <= first) return true;
    residency_.resize((end - first + pageBytes_ - 1) / pageBytes_);
    if (::mincore(mapping_ + first, end - first, residency_.data()) != 0) return false;
    return std::all_of(residency_.begin(), residency_.end(), [](unsigned char r) { return (r & 1) != 0; });
  }

  // Tag `tag`'s buffer for a request that missed the page cache; reserved at the first miss, and
  // only the pages misses touch are ever backed by memory.
  std::byte* missBuffer(uint16_t tag) {
    if (missBuffers_.size() == 0) {
      missBuffers_ = ublk::MappedRegion(transfers_.size() * size_t{kMaxIoBytes}, PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, "the loop's miss buffers");
    }
    return missBuffers_.as<std::byte>() + size_t{tag} * kMaxIoBytes;
  }

  int transferred(ublk::SqeSource& queue, uint16_t tag, uint8_t op, int res) {
    if (res < 0) return res;
    Transfer& t = transfers_[tag];
    if (res == 0) return -EIO;  // past the end of the backing store
    t.done += static_cast<uint32_t>(res);
    if (t.done < t.length) {
      submitTransfer(queue, tag, op);
      return ublk::kPending;
    }
    return op == kZeroWrite ? 0 : static_cast<int>(t.length);
  }

  // A transfer of the tag's buffer or the request's pages, or (kZeroWrite) of zeros, a chunk at a
  // time.
  void submitTransfer(ublk::SqeSource& queue, uint16_t tag, uint8_t op) {
    const Transfer& t = transfers_[tag];
    io_uring_sqe* sqe = queue.targetSqe(tag, op);
    const uint64_t at = t.offset + t.done;
    if (op == kZeroWrite) {
      io_uring_prep_write(sqe, kBackingFixedFile, zeros_, std::min(t.length - t.done, kZeroChunk), at);
    } else if (zeroCopy_) {
      // A registered request's address is its offset: the rest starts `done` bytes in.
      void* rest = reinterpret_cast<void*>(uintptr_t{t.done});
      if (t.write) {
        io_uring_prep_write_fixed(sqe, kBackingFixedFile, rest, t.length - t.done, at, tag);
        if (t.fua) sqe->rw_flags = RWF_DSYNC;
      } else {
        io_uring_prep_read_fixed(sqe, kBackingFixedFile, rest, t.length - t.done, at, tag);
      }
    } else if (t.write) {
      io_uring_prep_write(sqe, kBackingFixedFile, t.buffer + t.done, t.length - t.done, at);
      if (t.fua) sqe->rw_flags = RWF_DSYNC;
    } else {
      io_uring_prep_read(sqe, kBackingFixedFile, t.buffer + t.done, t.length - t.done, at);
    }
    onBacking(sqe);
  }

  std::vector<Transfer> transfers_;
  std::vector<bool> missed_;  // per tag: its request goes through the ring, not the mapping
  bool blockDevice_;
  bool zeroCopy_;
  bool uringDiscard_ = true;
  std::byte* mapping_;
  size_t mappingBytes_;
  uint64_t mappedBytes_ = 0;  // moved through the mapping since the last look at the resident size
  bool checkMisses_;
  const uint64_t pageBytes_ = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));  // read once, not per request
  MissSampler missSampler_;
  std::vector<unsigned char> residency_;
  ublk::MappedRegion missBuffers_;
  const std::byte* zeros_;
};

// Whether the file lives in memory (tmpfs, ramfs): its page cache never misses to a disk.
bool memoryBacked(const Backing& backing) {
  constexpr long kTmpfsMagic = 0x01021994;
  constexpr long kRamfsMagic = 0x858458f6;
  struct statfs fs {};
  if (backing.store.isBlockDevice() || ::fstatfs(backing.store.fd(), &fs) != 0) return false;
  return fs.f_type == kTmpfsMagic || fs.f_type == kRamfsMagic;
}

// How a buffered device moves its data (tests/bench/buffered.sh, disk.sh; BENCHMARKS.md):
// - through the ring: io_uring reads and writes of the page cache, straight into the request's
//   pages where the kernel lends them (zero copy). Cache misses are read in parallel (3.7x the
//   kernel's loop on a cold cache at 4k), and on a warm ext4 cache it led on every row.
// - through the mapping: the kernel copies between the request and ublkd's mapping of the file.
//   One copy with no io_uring round trip; on a disk, requests that miss the cache go through the
//   ring instead (LoopHandler). It stays the default where the ring would copy twice (no zero copy: 0.1-0.6x
//   the mapping on a warm ext4 cache) and on tmpfs, which has no misses to wait for and where
//   io_uring's reads take a worker thread (half the mapping's IOPS at qd 1).
// UBLKD_LOOP_BUFFERED=ring or =mapped overrides the choice.
bool bufferedThroughRing(const Backing& backing, bool zeroCopy) {
  const char* env = std::getenv("UBLKD_LOOP_BUFFERED");
  if (env != nullptr && std::string_view(env) == "ring") return true;
  if (env != nullptr && std::string_view(env) == "mapped") return false;
  return zeroCopy && !memoryBacked(backing);
}

class LoopTarget final : public Target {
 public:
  LoopTarget(const DeviceSpec& spec, BackingStore store)
      : backing_(inspect(spec, std::move(store))),
        geometry_(geometryFor(spec, backing_)),
        // Never written: every page of it is the kernel's zero page.
        zeros_(kZeroChunk, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "the zero buffer") {
    if (!backing_.direct) {
      const int prot = geometry_.readOnly ? PROT_READ : PROT_READ | PROT_WRITE;
      mapping_ = ublk::MappedRegion(geometry_.sizeBytes, prot, MAP_SHARED, backing_.store.fd(), 0, spec.path);
    }
  }
  std::string_view name() const override { return "loop"; }
  Geometry geometry() const override { return geometry_; }
  std::vector<int> files() const override { return {backing_.store.fd()}; }
  // O_DIRECT backing: no copy at all, the backing's reads and writes use the request's pages
  // (where the kernel has AUTO_BUF_REG; else one copy through the tag's buffer). Buffered
  // backing: one copy, request <-> page cache, as the kernel's own loop driver does; as io_uring
  // reads and writes of the page cache or through the mapping (bufferedThroughRing).
  ublk::DataPath preferredDataPath(bool zeroCopy) const override {
    return backing_.direct || bufferedThroughRing(backing_, zeroCopy) ? ublk::DataPath::ZeroCopy
                                                                      : ublk::DataPath::HandlerMapped;
  }
  std::unique_ptr<ublk::RequestHandler> makeHandler(uint16_t, uint16_t depth, ublk::DataPath path) override {
    // Only a buffered backing has a mapping; without one HandlerMapped is served as Copy.
    std::byte* mapping = path == ublk::DataPath::HandlerMapped ? mapping_.as<std::byte>() : nullptr;
    return std::make_unique<LoopHandler>(depth, backing_.store.isBlockDevice(), path == ublk::DataPath::ZeroCopy,
                                         mapping, mapping_.size(), !memoryBacked(backing_), zeros_.as<std::byte>());
  }

 private:
  Backing backing_;
  Geometry geometry_;
  ublk::MappedRegion zeros_;
  ublk::MappedRegion mapping_;
};

}  // namespace

std::unique_ptr<Target> makeLoopTarget(const DeviceSpec& spec, BackingStore backing) {
  return std::make_unique<LoopTarget>(spec, std::move(backing));
}

}  // namespace ublkd
