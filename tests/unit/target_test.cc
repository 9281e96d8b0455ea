// The targets' mapping of ublk requests to I/O, served on a real io_uring exactly as a Queue
// serves them (no ublk device needed): start(), then submit, reap and complete() until the
// result is no longer kPending.
#include "target.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "abi.h"
#include "device_spec.h"
#include "queue.h"
#include "ring.h"
#include "unique_fd.h"
#include "user_data.h"

namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::Property;
using ::testing::Throws;
using ublk::DataPath;
using ublk::kPending;
using ublk::RequestHandler;
using ublk::abi::IoDesc;
using ublk::abi::Op;
using ublkd::SpecError;
namespace ioflag = ublk::abi::ioflag;

constexpr uint64_t kFileBytes = 8 << 20;
constexpr uint16_t kDepth = 4;
constexpr size_t kBufferBytes = 1 << 20;
constexpr size_t kPage = 4096;

IoDesc ioDesc(uint8_t op, uint64_t startSector, uint32_t sectors, uint32_t flags = 0) {
  return {.op_flags = op | flags, .nr_sectors = sectors, .start_sector = startSector, .addr = 0};
}
IoDesc ioDesc(Op op, uint64_t startSector, uint32_t sectors, uint32_t flags = 0) {
  return ioDesc(static_cast<uint8_t>(op), startSector, sectors, flags);
}

// The backing file's initial contents: every byte differs from its neighbours (so a shifted
// offset shows), and nearby sectors differ from each other; zero only in one byte of 256.
std::byte patternByte(uint64_t offset) { return static_cast<std::byte>((offset * 31 + (offset >> 9) * 7 + 1) & 0xff); }
std::vector<std::byte> pattern(uint64_t offset, size_t length) {
  std::vector<std::byte> bytes(length);
  for (size_t i = 0; i < length; ++i) bytes[i] = patternByte(offset + i);
  return bytes;
}
std::vector<std::byte> filled(size_t length, uint8_t value) { return std::vector<std::byte>(length, std::byte{value}); }

// A temporary regular file on a disk filesystem (O_DIRECT and hole punching work there), filled
// with pattern() and synced, so its blocks are allocated.
class BackingFile {
 public:
  explicit BackingFile(uint64_t size) : path_("/var/tmp/ublkd-target-test-XXXXXX") {
    const int fd = ::mkstemp(path_.data());
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "mkstemp");
    fd_ = ublk::UniqueFd(fd);
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0)
      throw std::system_error(errno, std::generic_category(), "ftruncate");
    const std::vector<std::byte> bytes = pattern(0, size);
    if (::pwrite(fd, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size()) || ::fsync(fd) != 0) {
      throw std::system_error(errno, std::generic_category(), "fill " + path_);
    }
  }
  BackingFile(const BackingFile&) = delete;
  BackingFile& operator=(const BackingFile&) = delete;
  ~BackingFile() { ::unlink(path_.c_str()); }

  const std::string& path() const { return path_; }
  std::vector<std::byte> read(uint64_t offset, size_t length) const {
    std::vector<std::byte> bytes(length);
    EXPECT_EQ(::pread(fd_.get(), bytes.data(), length, static_cast<off_t>(offset)), static_cast<ssize_t>(length));
    return bytes;
  }
  // Allocated 512-byte units, as stat reports them.
  blkcnt_t blocks() const {
    struct stat st {};
    EXPECT_EQ(::fstat(fd_.get(), &st), 0);
    return st.st_blocks;
  }

 private:
  std::string path_;
  ublk::UniqueFd fd_;
};

struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<std::byte, FreeDeleter>;
AlignedBuffer alignedBuffer(size_t bytes) {
  auto* p = static_cast<std::byte*>(std::aligned_alloc(kPage, bytes));
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0xee, bytes);
  return AlignedBuffer(p);
}
std::vector<std::byte> bytesAt(const std::byte* p, size_t length) { return {p, p + length}; }

// What a handler put into one SQE, captured when it is submitted.
struct Issued {
  uint8_t opcode;
  uint8_t flags;
  int32_t fd;
  uint32_t opFlags;  // fsync_flags, rw_flags, ...: one union
  uint64_t userData;
};

// An SqeSource on a real io_uring, with fixed files registered as a Queue registers them: a
// placeholder at 0 (the queue's char device), then the target's files at 1..n.
class RingSqeSource final : public ublk::SqeSource {
 public:
  explicit RingSqeSource(const std::vector<int>& files)
      : ring_(64, 0), placeholder_(ublk::UniqueFd::open("/dev/null", O_RDONLY)) {
    std::vector<int> fixed{placeholder_.get()};
    fixed.insert(fixed.end(), files.begin(), files.end());
    const int ret = io_uring_register_files(ring_.get(), fixed.data(), static_cast<unsigned>(fixed.size()));
    if (ret < 0) throw std::system_error(-ret, std::generic_category(), "io_uring_register_files");
  }

  io_uring_sqe* targetSqe(uint16_t tag, uint8_t op) override {
    io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
    if (sqe == nullptr) throw std::runtime_error("test ring has no free SQE");
    std::memset(sqe, 0, sizeof(*sqe));
    sqe->user_data = ublk::UserData{.tag = tag, .targetIo = true, .op = op}.encode();
    unsubmitted_.push_back(sqe);
    ++inFlight_;
    return sqe;
  }

  // The loop and null targets use neither: they finish every request on one of its own CQEs.
  io_uring_sqe* eventSqe(uint8_t) override { throw std::logic_error("unexpected eventSqe"); }
  void finishRequest(uint16_t tag, int) override { ADD_FAILURE() << "unexpected finishRequest for tag " << tag; }

  // Serves one request to its final result, as Queue::run does.
  int serve(RequestHandler& handler, uint16_t tag, const IoDesc& desc, std::byte* data) {
    return finish(handler, tag, handler.start(*this, tag, desc, data));
  }

  // Completes a request whose start() (or complete()) returned `result`.
  int finish(RequestHandler& handler, uint16_t tag, int result) {
    std::map<uint16_t, int> results{{tag, result}};
    finishAll(handler, results);
    return results[tag];
  }

  // Completes every request in `results` (tag -> what its start() returned), in whatever order
  // their CQEs arrive; on return each holds its final result.
  void finishAll(RequestHandler& handler, std::map<uint16_t, int>& results) {
    const auto pending = [&] {
      for (const auto& [tag, result] : results) {
        if (result == kPending) return true;
      }
      return false;
    };
    while (pending()) {
      if (inFlight_ == 0) {
        ADD_FAILURE() << "a request is pending with none of its I/O in flight";
        return;
      }
      captureUnsubmitted();
      const int ret = io_uring_submit_and_wait(ring_.get(), 1);
      if (ret < 0 && ret != -EINTR) throw std::system_error(-ret, std::generic_category(), "io_uring_submit_and_wait");
      unsigned head;
      unsigned seen = 0;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(ring_.get(), head, cqe) {
        ++seen;
        --inFlight_;
        const ublk::UserData ud = ublk::UserData::decode(cqe->user_data);
        EXPECT_TRUE(ud.targetIo);
        const auto it = results.find(ud.tag);
        if (it == results.end() || it->second != kPending) {
          ADD_FAILURE() << "CQE for tag " << ud.tag << ", which has no pending request";
          continue;
        }
        it->second = handler.complete(*this, ud.tag, ud.op, cqe->res);
      }
      io_uring_cq_advance(ring_.get(), seen);
    }
    captureUnsubmitted();
  }

  // Every SQE the handlers have taken so far, in order (captured when submitted).
  const std::vector<Issued>& issued() {
    captureUnsubmitted();
    return issued_;
  }
  size_t sqesTaken() const { return issued_.size() + unsubmitted_.size(); }

 private:
  void captureUnsubmitted() {
    for (const io_uring_sqe* sqe : unsubmitted_) {
      issued_.push_back({.opcode = sqe->opcode,
                         .flags = sqe->flags,
                         .fd = sqe->fd,
                         .opFlags = sqe->fsync_flags,
                         .userData = sqe->user_data});
    }
    unsubmitted_.clear();
  }

  ublk::Ring ring_;
  ublk::UniqueFd placeholder_;
  std::vector<io_uring_sqe*> unsubmitted_;
  std::vector<Issued> issued_;
  unsigned inFlight_ = 0;
};

ublkd::DeviceSpec loopSpec(const std::string& path, const std::string& extra) {
  return ublkd::parseDeviceSpec(fmt::format(R"({{"target":"loop","path":"{}",{}}})", path, extra));
}

bool onBackingFixedFile(const Issued& sqe) { return sqe.fd == 1 && (sqe.flags & IOSQE_FIXED_FILE) != 0; }

// --- Loop target, DataPath::Copy, buffered backing ---

class LoopCopy : public ::testing::Test {
 protected:
  int serve(uint16_t tag, const IoDesc& desc) { return sqes_.serve(*handler_, tag, desc, buffer_.get()); }

  BackingFile file_{kFileBytes};
  std::unique_ptr<ublkd::Target> target_ = ublkd::makeTarget(loopSpec(file_.path(), R"("direct_io":false)"));
  std::unique_ptr<RequestHandler> handler_ = target_->makeHandler(0, kDepth, DataPath::Copy);
  RingSqeSource sqes_{target_->files()};
  AlignedBuffer buffer_ = alignedBuffer(kBufferBytes);
};

TEST_F(LoopCopy, ReadReturnsFullLengthAndFillsBufferWithFileBytes) {
  EXPECT_EQ(serve(2, ioDesc(Op::Read, 1000, 24)), 24 * 512);
  EXPECT_EQ(bytesAt(buffer_.get(), 24 * 512), pattern(1000 * 512, 24 * 512));
  EXPECT_EQ(buffer_.get()[24 * 512], std::byte{0xee}) << "read past the request's length";
  ASSERT_EQ(sqes_.issued().size(), 1u);
  EXPECT_EQ(sqes_.issued()[0].opcode, IORING_OP_READ);
  EXPECT_TRUE(onBackingFixedFile(sqes_.issued()[0]));
}

TEST_F(LoopCopy, WriteStoresBufferBytesAtRequestOffsetOnly) {
  std::memset(buffer_.get(), 0x5a, 8 * 512);
  EXPECT_EQ(serve(0, ioDesc(Op::Write, 77, 8)), 8 * 512);
  EXPECT_EQ(file_.read(77 * 512, 8 * 512), filled(8 * 512, 0x5a));
  EXPECT_EQ(file_.read(76 * 512, 512), pattern(76 * 512, 512));
  EXPECT_EQ(file_.read(85 * 512, 512), pattern(85 * 512, 512));
  ASSERT_EQ(sqes_.issued().size(), 1u);
  EXPECT_EQ(sqes_.issued()[0].opcode, IORING_OP_WRITE);
  EXPECT_EQ(sqes_.issued()[0].opFlags, 0u) << "a plain write must not be RWF_DSYNC";
  EXPECT_TRUE(onBackingFixedFile(sqes_.issued()[0]));
}

TEST_F(LoopCopy, FuaWriteIsDsyncWriteAndStoresBytes) {
  std::memset(buffer_.get(), 0xa5, 16 * 512);
  EXPECT_EQ(serve(1, ioDesc(Op::Write, 4096, 16, ioflag::kFua)), 16 * 512);
  EXPECT_EQ(file_.read(4096 * 512, 16 * 512), filled(16 * 512, 0xa5));
  ASSERT_EQ(sqes_.issued().size(), 1u);
  EXPECT_EQ(sqes_.issued()[0].opcode, IORING_OP_WRITE);
  EXPECT_EQ(sqes_.issued()[0].opFlags, static_cast<uint32_t>(RWF_DSYNC));
}

TEST_F(LoopCopy, FlushIsFdatasyncAndReturnsZero) {
  EXPECT_EQ(serve(0, ioDesc(Op::Flush, 0, 0)), 0);
  ASSERT_EQ(sqes_.issued().size(), 1u);
  EXPECT_EQ(sqes_.issued()[0].opcode, IORING_OP_FSYNC);
  EXPECT_EQ(sqes_.issued()[0].opFlags, IORING_FSYNC_DATASYNC);
  EXPECT_TRUE(onBackingFixedFile(sqes_.issued()[0]));
}

TEST_F(LoopCopy, DiscardPunchesHoleThatReadsZerosAndFreesBlocks) {
  const blkcnt_t before = file_.blocks();
  EXPECT_EQ(serve(0, ioDesc(Op::Discard, 2048, 2048)), 0);  // 1 MiB at 1 MiB
  EXPECT_EQ(file_.read(1 << 20, 1 << 20), filled(1 << 20, 0));
  EXPECT_EQ(file_.read((1 << 20) - 512, 512), pattern((1 << 20) - 512, 512));
  EXPECT_EQ(file_.read(2 << 20, 512), pattern(2 << 20, 512));
  EXPECT_LE(file_.blocks(), before - 2048 / 2) << "the punched MiB must be (mostly) freed";
  struct stat st {};
  ASSERT_EQ(::stat(file_.path().c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kFileBytes) << "a discard must keep the file's size";
}

TEST_F(LoopCopy, DiscardAtEndOfFileKeepsFileSize) {
  EXPECT_EQ(serve(0, ioDesc(Op::Discard, kFileBytes / 512 - 8, 8)), 0);
  EXPECT_EQ(file_.read(kFileBytes - 4096, 4096), filled(4096, 0));
  struct stat st {};
  ASSERT_EQ(::stat(file_.path().c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kFileBytes);
}

TEST_F(LoopCopy, WriteZeroesWithoutNoUnmapReadsBackZerosAndFreesBlocks) {
  const blkcnt_t before = file_.blocks();
  EXPECT_EQ(serve(3, ioDesc(Op::WriteZeroes, 8192, 1024)), 0);  // 512 KiB at 4 MiB
  EXPECT_EQ(file_.read(4 << 20, 512 << 10), filled(512 << 10, 0));
  EXPECT_EQ(file_.read((4 << 20) + (512 << 10), 512), pattern((4 << 20) + (512 << 10), 512));
  EXPECT_LE(file_.blocks(), before - 1024 / 2) << "without NOUNMAP the range is deallocated";
}

TEST_F(LoopCopy, WriteZeroesWithNoUnmapReadsBackZerosAndKeepsBlocksAllocated) {
  const blkcnt_t before = file_.blocks();
  EXPECT_EQ(serve(3, ioDesc(Op::WriteZeroes, 8192, 1024, ioflag::kNoUnmap)), 0);
  EXPECT_EQ(file_.read(4 << 20, 512 << 10), filled(512 << 10, 0));
  EXPECT_EQ(file_.read((4 << 20) - 512, 512), pattern((4 << 20) - 512, 512));
  EXPECT_EQ(file_.read((4 << 20) + (512 << 10), 512), pattern((4 << 20) + (512 << 10), 512));
  EXPECT_GE(file_.blocks(), before) << "NOUNMAP: the range must stay allocated";
}

TEST_F(LoopCopy, UnknownOpsFailWithEopnotsuppWithoutIo) {
  EXPECT_EQ(handler_->start(sqes_, 0, ioDesc(Op::WriteSame, 0, 8), buffer_.get()), -EOPNOTSUPP);
  EXPECT_EQ(handler_->start(sqes_, 0, ioDesc(uint8_t{20}, 0, 8), buffer_.get()), -EOPNOTSUPP);
  EXPECT_EQ(handler_->start(sqes_, 0, ioDesc(uint8_t{0xff}, 0, 8), buffer_.get()), -EOPNOTSUPP);
  EXPECT_EQ(sqes_.sqesTaken(), 0u);
}

TEST_F(LoopCopy, ReadCrossingEndOfFileResubmitsRestThenFailsWithEio) {
  // The first read stops at the end of the file; the resubmitted rest reads nothing.
  EXPECT_EQ(serve(0, ioDesc(Op::Read, kFileBytes / 512 - 1, 2)), -EIO);
  ASSERT_EQ(sqes_.issued().size(), 2u);
  EXPECT_EQ(sqes_.issued()[1].opcode, IORING_OP_READ);
  EXPECT_EQ(bytesAt(buffer_.get(), 512), pattern(kFileBytes - 512, 512));
}

TEST_F(LoopCopy, RequestsOnDifferentTagsInFlightTogetherCompleteIndependently) {
  AlignedBuffer second = alignedBuffer(kBufferBytes);
  std::memset(buffer_.get(), 0x11, 64 * 512);
  std::map<uint16_t, int> results{
      {0, handler_->start(sqes_, 0, ioDesc(Op::Write, 0, 64), buffer_.get())},
      {1, handler_->start(sqes_, 1, ioDesc(Op::Read, 6000, 32), second.get())},
      {2, handler_->start(sqes_, 2, ioDesc(Op::Flush, 0, 0), nullptr)},
  };
  EXPECT_EQ(results[0], kPending);
  EXPECT_EQ(results[1], kPending);
  EXPECT_EQ(results[2], kPending);
  sqes_.finishAll(*handler_, results);
  EXPECT_THAT(results, ElementsAre(Pair(0, 64 * 512), Pair(1, 32 * 512), Pair(2, 0)));
  EXPECT_EQ(file_.read(0, 64 * 512), filled(64 * 512, 0x11));
  EXPECT_EQ(bytesAt(second.get(), 32 * 512), pattern(6000 * 512, 32 * 512));
}

TEST_F(LoopCopy, TagIsReusableAfterItsRequestCompletes) {
  std::memset(buffer_.get(), 0x33, 4096);
  EXPECT_EQ(serve(0, ioDesc(Op::Write, 16, 8)), 4096);
  std::memset(buffer_.get(), 0, 4096);
  EXPECT_EQ(serve(0, ioDesc(Op::Read, 16, 4)), 2048);
  EXPECT_EQ(bytesAt(buffer_.get(), 2048), filled(2048, 0x33));
}

// --- Loop target, O_DIRECT backing ---

TEST(LoopDirect, DirectIoReadAndWriteMoveAlignedBuffersThroughCopyPath) {
  const BackingFile file(kFileBytes);
  std::unique_ptr<ublkd::Target> target;
  try {
    target = ublkd::makeTarget(loopSpec(file.path(), R"("direct_io":true)"));
  } catch (const SpecError& e) {
    if (e.field() == "/direct_io") GTEST_SKIP() << e.what();
    throw;
  }
  EXPECT_EQ(target->preferredDataPath(true), DataPath::ZeroCopy);  // Copy where the kernel has no AUTO_BUF_REG
  ASSERT_EQ(target->files().size(), 1u);
  EXPECT_NE(::fcntl(target->files()[0], F_GETFL) & O_DIRECT, 0);

  const auto handler = target->makeHandler(0, kDepth, DataPath::Copy);
  RingSqeSource sqes(target->files());
  const AlignedBuffer buffer = alignedBuffer(kBufferBytes);

  EXPECT_EQ(sqes.serve(*handler, 0, ioDesc(Op::Read, 256, 64), buffer.get()), 64 * 512);
  EXPECT_EQ(bytesAt(buffer.get(), 64 * 512), pattern(256 * 512, 64 * 512));

  std::memset(buffer.get(), 0x6b, 128 * 512);
  EXPECT_EQ(sqes.serve(*handler, 1, ioDesc(Op::Write, 1024, 128, ioflag::kFua), buffer.get()), 128 * 512);
  EXPECT_EQ(file.read(1024 * 512, 128 * 512), filled(128 * 512, 0x6b));

  EXPECT_EQ(sqes.serve(*handler, 2, ioDesc(Op::Flush, 0, 0), nullptr), 0);
}

TEST(LoopDirect, DefaultOpensDirectWhereFilesystemAllowsAndPrefersZeroCopy) {
  const BackingFile file(kFileBytes);
  const auto target =
      ublkd::makeTarget(ublkd::parseDeviceSpec(fmt::format(R"({{"target":"loop","path":"{}"}})", file.path())));
  ASSERT_EQ(target->files().size(), 1u);
  const bool direct = (::fcntl(target->files()[0], F_GETFL) & O_DIRECT) != 0;
  EXPECT_EQ(target->preferredDataPath(false), direct ? DataPath::ZeroCopy : DataPath::HandlerMapped);
}

// --- Loop target, DataPath::HandlerMapped (buffered backing, mapped page cache) ---

class LoopMapped : public ::testing::Test {
 protected:
  BackingFile file_{kFileBytes};
  std::unique_ptr<ublkd::Target> target_ = ublkd::makeTarget(loopSpec(file_.path(), R"("direct_io":false)"));
  std::unique_ptr<RequestHandler> handler_ = target_->makeHandler(0, kDepth, DataPath::HandlerMapped);
  RingSqeSource sqes_{target_->files()};
};

TEST_F(LoopMapped, BufferedBackingUsesTheRingOnlyWithZeroCopyAndADisk) {
  // Without zero copy the ring would copy twice; on tmpfs no miss waits for a disk.
  EXPECT_EQ(target_->preferredDataPath(false), DataPath::HandlerMapped);
  struct statfs fs {};
  ASSERT_EQ(::statfs(file_.path().c_str(), &fs), 0);
  const bool inMemory = fs.f_type == 0x01021994 /* tmpfs */;
  EXPECT_EQ(target_->preferredDataPath(true), inMemory ? DataPath::HandlerMapped : DataPath::ZeroCopy);
  ::setenv("UBLKD_LOOP_BUFFERED", "mapped", 1);
  EXPECT_EQ(target_->preferredDataPath(true), DataPath::HandlerMapped);
  ::setenv("UBLKD_LOOP_BUFFERED", "ring", 1);
  EXPECT_EQ(target_->preferredDataPath(false), DataPath::ZeroCopy);
  ::unsetenv("UBLKD_LOOP_BUFFERED");
}

TEST_F(LoopMapped, DataAddressPointsAtFileBytesOfStartSector) {
  for (const uint64_t sector : {uint64_t{0}, uint64_t{1}, uint64_t{777}, kFileBytes / 512 - 8}) {
    const std::byte* address = handler_->dataAddress(0, ioDesc(Op::Read, sector, 8));
    ASSERT_NE(address, nullptr);
    EXPECT_EQ(std::memcmp(address, file_.read(sector * 512, 4096).data(), 4096), 0) << "sector " << sector;
  }
  EXPECT_EQ(handler_->dataAddress(0, ioDesc(Op::Write, 100, 1)) - handler_->dataAddress(0, ioDesc(Op::Write, 0, 1)),
            100 * 512);
}

TEST_F(LoopMapped, ReadAndWriteCompleteAtOnceWithoutIo) {
  const IoDesc read = ioDesc(Op::Read, 40, 16);
  EXPECT_EQ(handler_->start(sqes_, 0, read, handler_->dataAddress(0, read)), 16 * 512);
  const IoDesc write = ioDesc(Op::Write, 80, 256);
  EXPECT_EQ(handler_->start(sqes_, 1, write, handler_->dataAddress(1, write)), 256 * 512);
  EXPECT_EQ(sqes_.sqesTaken(), 0u);
}

TEST_F(LoopMapped, WriteThroughDataAddressThenFlushIsVisibleToPreadOnAnotherFd) {
  const IoDesc write = ioDesc(Op::Write, 300, 8);
  std::byte* address = handler_->dataAddress(0, write);
  std::memset(address, 0x7c, 8 * 512);  // what the kernel's copy does
  EXPECT_EQ(sqes_.serve(*handler_, 0, write, address), 8 * 512);
  EXPECT_EQ(sqes_.serve(*handler_, 0, ioDesc(Op::Flush, 0, 0), nullptr), 0);
  ASSERT_EQ(sqes_.issued().size(), 1u);
  EXPECT_EQ(sqes_.issued()[0].opcode, IORING_OP_FSYNC);

  const ublk::UniqueFd other = ublk::UniqueFd::open(file_.path(), O_RDONLY);
  std::vector<std::byte> bytes(10 * 512);
  ASSERT_EQ(::pread(other.get(), bytes.data(), bytes.size(), 299 * 512), static_cast<ssize_t>(bytes.size()));
  EXPECT_EQ(std::vector(bytes.begin(), bytes.begin() + 512), pattern(299 * 512, 512));
  EXPECT_EQ(std::vector(bytes.begin() + 512, bytes.begin() + 9 * 512), filled(8 * 512, 0x7c));
  EXPECT_EQ(std::vector(bytes.begin() + 9 * 512, bytes.end()), pattern(308 * 512, 512));
}

TEST_F(LoopMapped, FuaWriteIsPendingUntilFdatasyncThenReturnsFullLength) {
  const IoDesc write = ioDesc(Op::Write, 500, 32, ioflag::kFua);
  std::byte* address = handler_->dataAddress(2, write);
  std::memset(address, 0x42, 32 * 512);
  const int started = handler_->start(sqes_, 2, write, address);
  EXPECT_EQ(started, kPending);
  ASSERT_EQ(sqes_.issued().size(), 1u);
  EXPECT_EQ(sqes_.issued()[0].opcode, IORING_OP_FSYNC);
  EXPECT_EQ(sqes_.issued()[0].opFlags, IORING_FSYNC_DATASYNC);
  EXPECT_TRUE(onBackingFixedFile(sqes_.issued()[0]));
  EXPECT_EQ(sqes_.finish(*handler_, 2, started), 32 * 512);
  EXPECT_EQ(file_.read(500 * 512, 32 * 512), filled(32 * 512, 0x42));
}

// A miss would be a page fault in the queue thread, waiting for the disk: it goes through the ring.
TEST_F(LoopMapped, PageCacheMissesGoThroughTheRing) {
  struct statfs fs {};
  ASSERT_EQ(::statfs(file_.path().c_str(), &fs), 0);
  if (fs.f_type == 0x01021994) GTEST_SKIP() << "tmpfs never misses";
  const ublk::UniqueFd fd = ublk::UniqueFd::open(file_.path(), O_RDONLY);
  ASSERT_EQ(::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED), 0);  // the file is clean: synced

  const IoDesc read = ioDesc(Op::Read, 64, 16);
  std::byte* address = handler_->dataAddress(1, read);
  EXPECT_EQ(sqes_.serve(*handler_, 1, read, address), 16 * 512);
  ASSERT_EQ(sqes_.issued().size(), 1u);
  EXPECT_EQ(sqes_.issued()[0].opcode, IORING_OP_READ);
  EXPECT_EQ(bytesAt(address, 16 * 512), pattern(64 * 512, 16 * 512));

  const IoDesc write = ioDesc(Op::Write, 4096, 8);
  address = handler_->dataAddress(2, write);
  std::memset(address, 0x5a, 8 * 512);  // what the kernel's copy does
  EXPECT_EQ(sqes_.serve(*handler_, 2, write, address), 8 * 512);
  EXPECT_EQ(sqes_.issued().back().opcode, IORING_OP_WRITE);
  EXPECT_EQ(file_.read(4096 * 512, 8 * 512), filled(8 * 512, 0x5a));

  // Now cached: served through the mapping, with no I/O of its own.
  const size_t before = sqes_.issued().size();
  EXPECT_EQ(sqes_.serve(*handler_, 3, read, handler_->dataAddress(3, read)), 16 * 512);
  EXPECT_EQ(sqes_.issued().size(), before);
}

TEST_F(LoopMapped, FuaReadCompletesAtOnce) {
  const IoDesc read = ioDesc(Op::Read, 500, 8, ioflag::kFua);
  EXPECT_EQ(handler_->start(sqes_, 0, read, handler_->dataAddress(0, read)), 8 * 512);
  EXPECT_EQ(sqes_.sqesTaken(), 0u);
}

TEST_F(LoopMapped, DiscardAndWriteZeroesStillGoToTheFile) {
  EXPECT_EQ(sqes_.serve(*handler_, 0, ioDesc(Op::Discard, 2048, 16), nullptr), 0);
  EXPECT_EQ(sqes_.serve(*handler_, 1, ioDesc(Op::WriteZeroes, 4096, 16, ioflag::kNoUnmap), nullptr), 0);
  EXPECT_EQ(file_.read(2048 * 512, 16 * 512), filled(16 * 512, 0));
  EXPECT_EQ(file_.read(4096 * 512, 16 * 512), filled(16 * 512, 0));
  const std::byte* mapped = handler_->dataAddress(0, ioDesc(Op::Read, 2048, 16));
  EXPECT_EQ(bytesAt(mapped, 16 * 512), filled(16 * 512, 0)) << "the mapping must see the hole";
}

// --- Loop target geometry and read-only ---

TEST(LoopGeometry, SizeDefaultsToBackingFileSize) {
  const BackingFile file(kFileBytes);
  const auto target = ublkd::makeTarget(loopSpec(file.path(), R"("direct_io":false)"));
  EXPECT_EQ(target->name(), "loop");
  EXPECT_EQ(target->geometry().sizeBytes, kFileBytes);
  EXPECT_EQ(target->geometry().logicalBlock, 512u);
  EXPECT_FALSE(target->geometry().readOnly);
  EXPECT_TRUE(target->geometry().discard);
}

TEST(LoopGeometry, SmallerSpecSizeIsKept) {
  const BackingFile file(kFileBytes);
  const auto target = ublkd::makeTarget(loopSpec(file.path(), R"("direct_io":false,"size":"4M")"));
  EXPECT_EQ(target->geometry().sizeBytes, uint64_t{4} << 20);
}

TEST(LoopGeometry, SpecSizeLargerThanBackingFileIsRejectedAtSlashSize) {
  const BackingFile file(kFileBytes);
  const ublkd::DeviceSpec spec = loopSpec(file.path(), R"("direct_io":false,"size":"16M")");
  EXPECT_THAT([&] { (void)ublkd::makeTarget(spec); }, Throws<SpecError>(Property(&SpecError::field, "/size")));
}

TEST(LoopGeometry, ReadOnlyOpensFilesReadOnlyAndWriteFailsWithEbadf) {
  const BackingFile file(kFileBytes);
  const auto target = ublkd::makeTarget(loopSpec(file.path(), R"("direct_io":false,"read_only":true)"));
  EXPECT_TRUE(target->geometry().readOnly);
  EXPECT_FALSE(target->geometry().discard);
  ASSERT_EQ(target->files().size(), 1u);
  EXPECT_EQ(::fcntl(target->files()[0], F_GETFL) & O_ACCMODE, O_RDONLY);

  const auto handler = target->makeHandler(0, kDepth, DataPath::Copy);
  RingSqeSource sqes(target->files());
  const AlignedBuffer buffer = alignedBuffer(kBufferBytes);
  EXPECT_EQ(sqes.serve(*handler, 0, ioDesc(Op::Read, 8, 8), buffer.get()), 8 * 512);
  EXPECT_EQ(bytesAt(buffer.get(), 8 * 512), pattern(8 * 512, 8 * 512));
  std::memset(buffer.get(), 0x99, 8 * 512);
  EXPECT_EQ(sqes.serve(*handler, 0, ioDesc(Op::Write, 8, 8), buffer.get()), -EBADF);
  EXPECT_EQ(file.read(8 * 512, 8 * 512), pattern(8 * 512, 8 * 512));
}

// --- Null target ---

class NullTarget : public ::testing::Test {
 protected:
  std::unique_ptr<ublkd::Target> target_ =
      ublkd::makeTarget(ublkd::parseDeviceSpec(R"({"target":"null","size":"1G"})"));
  std::unique_ptr<RequestHandler> handler_ = target_->makeHandler(0, kDepth, target_->preferredDataPath(true));
  RingSqeSource sqes_{target_->files()};
};

TEST_F(NullTarget, PrefersDataPathNoneAndHasNoFiles) {
  EXPECT_EQ(target_->name(), "null");
  EXPECT_EQ(target_->preferredDataPath(true), DataPath::None);
  EXPECT_TRUE(target_->files().empty());
  EXPECT_EQ(target_->geometry().sizeBytes, uint64_t{1} << 30);
}

TEST_F(NullTarget, ReadAndWriteReturnFullLengthWithoutIo) {
  EXPECT_EQ(sqes_.serve(*handler_, 0, ioDesc(Op::Read, 0, 8), nullptr), 8 * 512);
  EXPECT_EQ(sqes_.serve(*handler_, 1, ioDesc(Op::Write, 12345, 2048), nullptr), 2048 * 512);
  EXPECT_EQ(sqes_.serve(*handler_, 2, ioDesc(Op::Write, 0, 1, ioflag::kFua), nullptr), 512);
  EXPECT_EQ(sqes_.sqesTaken(), 0u);
}

TEST_F(NullTarget, FlushDiscardAndWriteZeroesReturnZeroWithoutIo) {
  EXPECT_EQ(sqes_.serve(*handler_, 0, ioDesc(Op::Flush, 0, 0), nullptr), 0);
  EXPECT_EQ(sqes_.serve(*handler_, 1, ioDesc(Op::Discard, 0, 2048), nullptr), 0);
  EXPECT_EQ(sqes_.serve(*handler_, 2, ioDesc(Op::WriteZeroes, 0, 2048, ioflag::kNoUnmap), nullptr), 0);
  EXPECT_EQ(sqes_.sqesTaken(), 0u);
}

}  // namespace
