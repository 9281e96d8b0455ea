// Queue: ring setup with fallbacks, the FETCH / COMMIT_AND_FETCH protocol and the batch loop.
#include "queue.h"

#include <poll.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <system_error>

#include <fmt/format.h>

#include "throw_errno.h"
#include "user_data.h"

namespace ublk {
namespace {

constexpr int kCharFixedFile = 0;
// No real tag reaches 0xffff (depth <= 4096): marks the stop eventfd's poll.
constexpr UserData kStopPoll{.tag = 0xffff};
// The op of a ublk command's user_data: FETCH, COMMIT_AND_FETCH and NEED_GET_DATA, or the
// registration commands of the ZeroCopy fallback.
constexpr uint8_t kFetchOrCommit = 0;
constexpr uint8_t kRegisterBuffer = 1;
constexpr uint8_t kUnregisterBuffer = 2;

unsigned roundUpPow2(unsigned n) {
  unsigned p = 1;
  while (p < n) p <<= 1;
  return p;
}

// The fastest setup first; older kernels refuse flags they don't know with EINVAL.
std::unique_ptr<Ring> makeQueueRing(unsigned entries) {
  const unsigned attempts[] = {
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_COOP_TASKRUN,
      0,
  };
  for (const unsigned flags : attempts) {
    try {
      return std::make_unique<Ring>(entries, flags);
    } catch (const std::system_error& e) {
      if (e.code().value() != EINVAL || flags == 0) throw;
    }
  }
  return nullptr;  // unreachable: the last attempt throws
}

size_t pageRounded(size_t bytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

}  // namespace

Queue::Queue(const Config& config) : config_(config) {
  const std::string label = fmt::format("ublkc{} queue {}", config.devId, config.id);
  // Room for a ublk command and one handler SQE per tag in flight at once.
  ring_ = makeQueueRing(roundUpPow2(2u * config.depth));

  std::vector<int> files{config.charFd};
  files.insert(files.end(), config.files.begin(), config.files.end());
  // Saves a file-table lookup on every io_uring_enter; kernels before 5.18 do without.
  io_uring_register_ring_fd(ring_->get());

  const int ret = io_uring_register_files(ring_->get(), files.data(), static_cast<unsigned>(files.size()));
  if (ret < 0) throwErrno(-ret, "io_uring_register_files (" + label + ")");

  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  descriptors_ =
      MappedRegion(pageRounded(config.depth * sizeof(abi::IoDesc)), PROT_READ, MAP_SHARED | MAP_POPULATE, config.charFd,
                   static_cast<off_t>(abi::descArrayOffset(config.id, page)), "descriptors of " + label);
  data_.assign(config.depth, nullptr);
  if (config.dataPath == DataPath::ZeroCopy) {
    // One empty slot per tag: the kernel fills slot `tag` with a request's pages.
    const int reg = io_uring_register_buffers_sparse(ring_->get(), config.depth);
    if (reg < 0) throwErrno(-reg, "io_uring_register_buffers_sparse (" + label + ")");
    registeredByUs_.assign(config.depth, false);
  }
  if (config.dataPath == DataPath::Copy) {
    buffers_ = MappedRegion(size_t{config.depth} * config.bufferBytes, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "buffers of " + label);
    for (uint16_t tag = 0; tag < config.depth; ++tag) data_[tag] = tagBuffer(tag);
  }
}

std::byte* Queue::tagBuffer(uint16_t tag) const { return buffers_.as<std::byte>() + size_t{tag} * config_.bufferBytes; }

io_uring_sqe* Queue::nextSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_->get());
  if (sqe == nullptr) {
    // Cannot happen while at most 2 * depth SQEs are outstanding; flush rather than fail if it does.
    const int ret = io_uring_submit(ring_->get());
    if (ret < 0) throwErrno(-ret, fmt::format("io_uring_submit (ublkc{} queue {})", config_.devId, config_.id));
    sqe = io_uring_get_sqe(ring_->get());
    if (sqe == nullptr) throwErrno(EBUSY, "queue ring has no free SQE");
  }
  std::memset(sqe, 0, sizeof(*sqe));
  return sqe;
}

io_uring_sqe* Queue::targetSqe(uint16_t tag, uint8_t op) {
  io_uring_sqe* sqe = nextSqe();
  sqe->user_data = UserData{.tag = tag, .targetIo = true, .op = op}.encode();
  ++targetInFlight_;
  return sqe;
}

io_uring_sqe* Queue::eventSqe(uint8_t op) {
  io_uring_sqe* sqe = nextSqe();
  sqe->user_data = UserData{.op = op, .targetEvent = true}.encode();
  return sqe;
}

void Queue::finishRequest(uint16_t tag, int result) { finish(tag, result); }

void Queue::prepIoCmd(uint32_t op, uint16_t tag, int result, uint8_t kind) {
  io_uring_sqe* sqe = nextSqe();
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = kCharFixedFile;
  sqe->flags = IOSQE_FIXED_FILE;
  sqe->cmd_op = op;
  sqe->user_data = UserData{.tag = tag, .op = kind}.encode();
  const bool zeroCopy = config_.dataPath == DataPath::ZeroCopy;
  // ZeroCopy: the kernel registers the next request's pages in slot `tag`, and says so in the
  // request's flags if it cannot; (un)registration commands name the slot in `addr`.
  if (zeroCopy && kind == kFetchOrCommit) sqe->addr = abi::io::autoBufReg(tag, abi::io::kAutoBufRegFallback);
  const abi::IoCmd cmd{
      .q_id = config_.id,
      .tag = tag,
      .result = result,
      .addr = zeroCopy ? (kind == kFetchOrCommit ? 0 : tag) : reinterpret_cast<uintptr_t>(data_[tag]),
  };
  static_assert(sizeof(cmd) <= 16, "an I/O command must fit a 64-byte SQE");
  std::memcpy(sqe->cmd, &cmd, sizeof(cmd));
}

void Queue::fetchAll() {
  if (config_.stopFd >= 0) {
    io_uring_sqe* sqe = nextSqe();
    io_uring_prep_poll_add(sqe, config_.stopFd, POLLIN);
    sqe->user_data = kStopPoll.encode();
  }
  for (uint16_t tag = 0; tag < config_.depth; ++tag) prepIoCmd(abi::io::kFetchReq, tag, 0);
  const int ret = io_uring_submit(ring_->get());
  if (ret < 0) throwErrno(-ret, fmt::format("submit FETCH_REQ (ublkc{} queue {})", config_.devId, config_.id));
}

void Queue::finish(uint16_t tag, int result) {
  if (result == kPending) return;
  --started_;
  if (config_.observer != nullptr) config_.observer->committed(tag, result);
  if (!registeredByUs_.empty() && registeredByUs_[tag]) {
    // Processed in order before the commit, so slot `tag` is free for the next request.
    registeredByUs_[tag] = false;
    prepIoCmd(abi::io::kUnregisterIoBuf, tag, 0, kUnregisterBuffer);
  }
  prepIoCmd(abi::io::kCommitAndFetchReq, tag, result);
}

void Queue::startRequest(uint16_t tag, RequestHandler& handler) {
  const abi::IoDesc desc = descriptors_.as<const abi::IoDesc>()[tag];  // the slot is reused after commit
  // A WRITE's address was chosen at its NEED_GET_DATA, and its data is already there.
  if (config_.dataPath == DataPath::HandlerMapped && abi::opOf(desc) != abi::Op::Write) {
    data_[tag] = handler.dataAddress(tag, desc);
  }
  if (config_.observer != nullptr) config_.observer->started(tag);
  finish(tag, handler.start(*this, tag, desc, data_[tag]));
}

void Queue::onIoCmdCqe(uint16_t tag, int res, RequestHandler& handler) {
  if (stopping_ && (res == abi::io::kResOk || res == abi::io::kResNeedGetData)) {
    // Told to stop: a new request is left uncommitted, for the kernel to requeue to a successor
    // (or fail) once /dev/ublkcN closes, so the queue drains even under load.
    return;
  }
  if (res == abi::io::kResOk) {
    ++started_;
    const abi::IoDesc& desc = descriptors_.as<const abi::IoDesc>()[tag];
    // A WRITE that asked for its data address arrived then.
    if (config_.observer != nullptr &&
        !(config_.dataPath == DataPath::HandlerMapped && abi::opOf(desc) == abi::Op::Write)) {
      config_.observer->arrived(tag, desc);
    }
    const uint32_t flags = desc.op_flags;
    if (config_.dataPath == DataPath::ZeroCopy && (flags & abi::ioflag::kNeedRegBuf) != 0) {
      // The kernel could not register the request's pages (a slot still taken?): register them
      // ourselves, and start the request once that is done.
      registeredByUs_[tag] = true;
      prepIoCmd(abi::io::kRegisterIoBuf, tag, 0, kRegisterBuffer);
      return;
    }
    startRequest(tag, handler);
  } else if (res == abi::io::kResNeedGetData) {
    // A WRITE asks where its data should go; the kernel copies it there before the next CQE.
    const abi::IoDesc& desc = descriptors_.as<const abi::IoDesc>()[tag];
    if (config_.observer != nullptr) config_.observer->arrived(tag, desc);
    data_[tag] = handler.dataAddress(tag, desc);
    prepIoCmd(abi::io::kNeedGetData, tag, 0);
  } else if (res == abi::io::kResAbort) {
    ++abortedTags_;
  } else {
    throwErrno(-res, fmt::format("FETCH/COMMIT_AND_FETCH (ublkc{} queue {} tag {})", config_.devId, config_.id, tag));
  }
}

unsigned Queue::reap(RequestHandler& handler) {
  io_uring* ring = ring_->get();
  unsigned head;
  unsigned seen = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(ring, head, cqe) {
    ++seen;
    const UserData ud = UserData::decode(cqe->user_data);
    if (ud == kStopPoll) {
      stopping_ = true;
    } else if (ud.targetEvent) {
      handler.onEvent(*this, ud.op, cqe->res);
    } else if (ud.targetIo) {
      --targetInFlight_;
      finish(ud.tag, handler.complete(*this, ud.tag, ud.op, cqe->res));
    } else if (ud.op == kRegisterBuffer) {
      if (cqe->res >= 0) {
        startRequest(ud.tag, handler);
      } else {
        registeredByUs_[ud.tag] = false;
        finish(ud.tag, cqe->res);
      }
    } else if (ud.op == kUnregisterBuffer) {
      // A buffer left registered keeps its request from ever completing.
      if (cqe->res < 0)
        throwErrno(-cqe->res,
                   fmt::format("UNREGISTER_IO_BUF (ublkc{} queue {} tag {})", config_.devId, config_.id, ud.tag));
    } else {
      onIoCmdCqe(ud.tag, cqe->res, handler);
    }
  }
  io_uring_cq_advance(ring, seen);
  return seen;
}

void Queue::run(RequestHandler& handler) {
  using Clock = std::chrono::steady_clock;
  io_uring* ring = ring_->get();
  const bool mayPoll = config_.pollWindow.count() > 0;
  auto pollUntil = Clock::time_point::min();
  bool polling = false;
  while ((abortedTags_ < config_.depth && !stopping_) || targetInFlight_ > 0 || started_ > 0) {
    handler.beforeWait(*this);
    // Both submit this batch's SQEs in one io_uring_enter; the first also runs the task work
    // that delivers new requests, without sleeping.
    const int ret = polling ? io_uring_submit_and_get_events(ring) : io_uring_submit_and_wait(ring, 1);
    if (ret < 0 && ret != -EINTR) {
      throwErrno(-ret, fmt::format("io_uring_enter (ublkc{} queue {})", config_.devId, config_.id));
    }
    // One clock read per batch, none when neither polling nor statistics want it: in some guests
    // it is an emulated HPET.
    const auto now = mayPoll || config_.observer != nullptr ? Clock::now() : Clock::time_point{};
    if (config_.observer != nullptr) config_.observer->batchBegins(now);
    const bool busy = reap(handler) > 0;
    if (!mayPoll) continue;
    if (busy) pollUntil = now + config_.pollWindow;
    polling = now < pollUntil;
  }
  // The last batch's commits must reach the kernel: after a handover (QUIESCE_DEV) a request we
  // finished but never committed would be requeued to the next daemon, or failed.
  const int ret = io_uring_submit(ring);
  if (ret < 0) throwErrno(-ret, fmt::format("submit last commits (ublkc{} queue {})", config_.devId, config_.id));
}

}  // namespace ublk
