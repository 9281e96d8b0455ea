// BatchCommands: PREP / FETCH / COMMIT_IO_CMDS of one queue under UBLK_F_BATCH_IO.
#include "batch_commands.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "throw_errno.h"

namespace ublk {
namespace {

constexpr int kCharFixedFile = 0;
constexpr uint16_t kFetchGroup = 0;
// From <linux/io_uring.h> of 6.12+ / 6.19+; liburing 2.3's headers lack them.
constexpr uint16_t kBufRingIncremental = 2;       // IOU_PBUF_RING_INC: a CQE consumes only what it used
constexpr uint32_t kUringCmdMultishot = 1U << 1;  // IORING_URING_CMD_MULTISHOT

size_t pageRoundedUp(size_t bytes) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

}  // namespace

BatchCommands::BatchCommands(io_uring* ring, uint16_t queue, uint16_t depth, DataPath path,
                             std::span<std::byte* const> data)
    : ring_(ring),
      queue_(queue),
      depth_(depth),
      flags_(path == DataPath::Copy       ? abi::batch::kHasBufAddr
             : path == DataPath::ZeroCopy ? abi::batch::kAutoBufRegFallback
                                          : 0),
      elemBytes_(path == DataPath::Copy ? sizeof(abi::BatchElem) + sizeof(uint64_t) : sizeof(abi::BatchElem)),
      data_(data) {
  const std::string label = fmt::format("queue {}", queue);
  bufRing_ = MappedRegion(pageRoundedUp(sizeof(io_uring_buf)), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                          0, "FETCH buffer ring of " + label);
  tagBytes_ = MappedRegion(pageRoundedUp(size_t{depth} * sizeof(uint16_t)), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0, "FETCH tag buffer of " + label);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(bufRing_.as<void>());
  reg.ring_entries = 1;
  reg.bgid = kFetchGroup;
  reg.pad = kBufRingIncremental;  // the kernel's `flags`
  const int ret = io_uring_register_buf_ring(ring_, &reg, 0);
  if (ret < 0) throwErrno(-ret, "io_uring_register_buf_ring (FETCH_IO_CMDS of " + label + ")");
  io_uring_buf_ring_init(bufRing_.as<io_uring_buf_ring>());
  fetched_.reserve(abi::batch::kMaxTagsPerCqe);
  pending_.reserve(size_t{depth} * elemBytes_);
}

void BatchCommands::prepCommand(io_uring_sqe* sqe, uint32_t op, uint16_t flags, uint16_t count, const void* elements) {
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = kCharFixedFile;
  sqe->flags = IOSQE_FIXED_FILE;
  sqe->cmd_op = op;
  sqe->addr = reinterpret_cast<uintptr_t>(elements);
  sqe->len = uint32_t{count} * elemBytes_;
  const abi::BatchIo cmd{.q_id = queue_, .flags = flags, .nr_elem = count, .elem_bytes = elemBytes_};
  std::memcpy(sqe->cmd, &cmd, sizeof(cmd));
}

void BatchCommands::appendElement(std::vector<std::byte>& out, uint16_t tag, int result) const {
  // AUTO_BUF_REG: each tag keeps slot `tag` for good (the kernel unregisters the slot a COMMIT
  // names, so it must not move).
  const abi::BatchElem elem{.tag = tag, .buf_index = tag, .result = result};
  const size_t at = out.size();
  out.resize(at + elemBytes_);
  std::memcpy(out.data() + at, &elem, sizeof(elem));
  if ((flags_ & abi::batch::kHasBufAddr) != 0) {
    const uint64_t addr = reinterpret_cast<uintptr_t>(data_[tag]);
    std::memcpy(out.data() + at + sizeof(elem), &addr, sizeof(addr));
  }
}

void BatchCommands::prepPrep(io_uring_sqe* sqe) {
  prep_.clear();
  for (uint16_t tag = 0; tag < depth_; ++tag) appendElement(prep_, tag, 0);
  prepCommand(sqe, abi::batch::kPrepIoCmds, flags_, depth_, prep_.data());
}

void BatchCommands::prepFetch(io_uring_sqe* sqe) {
  io_uring_buf_ring* ring = bufRing_.as<io_uring_buf_ring>();
  io_uring_buf_ring_add(ring, tagBytes_.as<void>(), static_cast<unsigned>(tagBytes_.size()), 0,
                        io_uring_buf_ring_mask(1), 0);
  io_uring_buf_ring_advance(ring, 1);
  tagOffset_ = 0;
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = kCharFixedFile;
  sqe->flags = IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
  sqe->cmd_op = abi::batch::kFetchIoCmds;
  sqe->uring_cmd_flags = kUringCmdMultishot;
  sqe->buf_group = kFetchGroup;
  const abi::BatchIo cmd{.q_id = queue_,
                         .flags = 0,
                         .nr_elem = static_cast<uint16_t>(tagBytes_.size() / sizeof(uint16_t)),
                         .elem_bytes = sizeof(uint16_t)};
  std::memcpy(sqe->cmd, &cmd, sizeof(cmd));
}

std::span<const uint16_t> BatchCommands::fetchedTags(const io_uring_cqe& cqe) {
  fetched_.clear();
  if (cqe.res <= 0 || (cqe.flags & IORING_CQE_F_BUFFER) == 0) return {};
  const size_t bytes = static_cast<size_t>(cqe.res);
  if (tagOffset_ + bytes > tagBytes_.size()) {
    throwErrno(EOVERFLOW,
               fmt::format("FETCH_IO_CMDS (queue {}): {} bytes of tags past the buffer's end", queue_, bytes));
  }
  fetched_.resize(bytes / sizeof(uint16_t));
  std::memcpy(fetched_.data(), tagBytes_.as<std::byte>() + tagOffset_, fetched_.size() * sizeof(uint16_t));
  tagOffset_ += bytes;
  for (const uint16_t tag : fetched_) {
    if (tag >= depth_) throwErrno(EINVAL, fmt::format("FETCH_IO_CMDS (queue {}) delivered tag {}", queue_, tag));
  }
  return fetched_;
}

BatchCommands::FetchEnd BatchCommands::fetchEnd(const io_uring_cqe& cqe) const {
  if ((cqe.flags & IORING_CQE_F_MORE) != 0) return FetchEnd::Armed;
  if (cqe.res >= 0 || cqe.res == -ENOBUFS) return FetchEnd::Rearm;
  if (cqe.res == abi::io::kResAbort) return FetchEnd::Aborted;
  throwErrno(-cqe.res, fmt::format("FETCH_IO_CMDS (queue {})", queue_));
}

void BatchCommands::addCommit(uint16_t tag, int result) { appendElement(pending_, tag, result); }

uint16_t BatchCommands::prepCommit(io_uring_sqe* sqe) {
  uint16_t slot;
  if (freeSlots_.empty()) {
    slot = static_cast<uint16_t>(inFlight_.size());
    inFlight_.emplace_back().reserve(size_t{depth_} * elemBytes_);
  } else {
    slot = freeSlots_.back();
    freeSlots_.pop_back();
  }
  std::vector<std::byte>& elements = inFlight_[slot];
  elements.swap(pending_);
  pending_.clear();
  prepCommand(sqe, abi::batch::kCommitIoCmds, flags_, static_cast<uint16_t>(elements.size() / elemBytes_),
              elements.data());
  return slot;
}

void BatchCommands::commitDone(uint16_t slot, int res, uint32_t devId) {
  const size_t bytes = inFlight_.at(slot).size();
  freeSlots_.push_back(slot);
  if (res >= 0 && static_cast<size_t>(res) == bytes) return;
  // Elements past the first refused one were not committed either: their requests would hang.
  if (res >= 0) {
    throwErrno(EPROTO, fmt::format("COMMIT_IO_CMDS (ublkc{} queue {}): the kernel took {} of {} results", devId, queue_,
                                   res / elemBytes_, bytes / elemBytes_));
  }
  throwErrno(-res, fmt::format("COMMIT_IO_CMDS (ublkc{} queue {})", devId, queue_));
}

}  // namespace ublk
