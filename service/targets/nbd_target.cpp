// The nbd target: a device served by an NBD server through libnbd, one connection per queue, on
// the queue's own ring. The connection's socket is polled with one-shot POLL_ADDs the handler arms
// before the queue sleeps; libnbd's completion callbacks run inside notify on the queue thread and
// finish requests there, so there is no thread and no lock of ours on the I/O path.
//
// A lost connection is not an I/O error: the requests it carried wait while the handler reconnects
// with a bounded backoff, and are issued again on the new connection. Once the spec's
// reconnect_timeout has passed since the loss, waiting requests (and new ones, until the server is
// back) fail with EIO; a device being stopped fails them at once.
#include <libnbd.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "abi.h"
#include "nbd_connection.h"
#include "service_error.h"
#include "target.h"
#include "user_data.h"

namespace ublkd {
namespace {

using Clock = std::chrono::steady_clock;
using ublk::abi::IoDesc;
using ublk::abi::Op;

// How long setting a device up waits for each connection's handshake.
constexpr std::chrono::seconds kSetupTimeout{20};
// A reconnection attempt that has not finished its handshake by then is dropped and tried again.
constexpr std::chrono::seconds kAttemptTimeout{10};
constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{2000};
// NBD lengths are 32 bits; discards and zeroes go in pieces of at most this.
constexpr uint32_t kMaxDiscardBytes = 1u << 30;

// Event ops: the kind in the top two bits, a poll's generation in the low six (a stale poll's
// CQE, after the connection changed or the mask did, is recognised and ignored).
constexpr uint8_t kPollKind = 0x40;
constexpr uint8_t kTimerOp = 0x80;
constexpr uint8_t kRemoveOp = 0xc0;
constexpr uint8_t kGenerationMask = 0x3f;

struct NbdSettings {
  NbdSpec spec;
  std::string name;
  NbdExport exported;
  std::chrono::seconds reconnectTimeout;
  std::shared_ptr<std::atomic<bool>> stopping;
};

class NbdHandler final : public ublk::RequestHandler {
 public:
  NbdHandler(const NbdSettings& settings, uint16_t queue, uint16_t depth, std::unique_ptr<NbdConnection> connection)
      : settings_(settings), queue_(queue), slots_(depth), connection_(std::move(connection)) {
    for (uint16_t tag = 0; tag < depth; ++tag) slots_[tag] = {.handler = this, .tag = tag};
  }

  int start(ublk::SqeSource& sqes, uint16_t tag, const IoDesc& desc, std::byte* data) override {
    sqes_ = &sqes;
    Slot& slot = slots_[tag];
    slot.desc = desc;
    slot.data = data;
    if (connected()) return issue(slot);
    if (failing()) return -EIO;
    wait(slot);
    return ublk::kPending;
  }

  int complete(ublk::SqeSource&, uint16_t, uint8_t, int res) override { return res; }  // no per-request SQEs

  void onEvent(ublk::SqeSource& sqes, uint8_t op, int res) override {
    sqes_ = &sqes;
    if (op == kTimerOp) {
      timerArmed_ = false;
      onTick();
    } else if ((op & ~kGenerationMask) == kPollKind && (op & kGenerationMask) == generation_) {
      armedEvents_ = 0;
      if (res >= 0 && connection_) drive(static_cast<short>(res));
    }
  }

  void beforeWait(ublk::SqeSource& sqes) override {
    sqes_ = &sqes;
    if (connection_) armPoll();
    if (!connected() && !timerArmed_) armTimer();
  }

 private:
  enum class State : uint8_t { Idle, Issued, Waiting };
  struct Slot {
    NbdHandler* handler = nullptr;
    uint16_t tag = 0;
    State state = State::Idle;
    IoDesc desc{};
    std::byte* data = nullptr;
  };

  bool connected() const { return connection_ && !lostAt_; }
  // No server for longer than the spec allows, or the device is going away: fail, do not wait.
  bool failing() const {
    return settings_.stopping->load() || (lostAt_ && Clock::now() - *lostAt_ >= settings_.reconnectTimeout);
  }

  static int onComplete(void* user, int* error) {
    auto* slot = static_cast<Slot*>(user);
    slot->handler->completed(*slot, *error);
    return 1;  // retire the command
  }

  void completed(Slot& slot, int error) {
    if (slot.state != State::Issued) return;
    // ENOTCONN: libnbd retired the command because the connection died; ESHUTDOWN: the server is
    // going away. Either way the request waits for the next connection.
    if (error == ENOTCONN || error == ESHUTDOWN) {
      lost_ = true;
      wait(slot);
      return;
    }
    slot.state = State::Idle;
    const Op op = ublk::abi::opOf(slot.desc);
    const int result = error != 0 ? -error : (op == Op::Read || op == Op::Write) ? int(slot.desc.nr_sectors << 9) : 0;
    sqes_->finishRequest(slot.tag, result);
  }

  void wait(Slot& slot) {
    slot.state = State::Waiting;
    waiting_.push_back(slot.tag);
  }

  int issue(Slot& slot) {
    const NbdExport& ex = settings_.exported;
    nbd_handle* h = connection_->handle();
    const uint64_t offset = slot.desc.start_sector << 9;
    const uint32_t length = slot.desc.nr_sectors << 9;
    const nbd_completion_callback done{.callback = onComplete, .user_data = &slot, .free = nullptr};
    const bool fua = (slot.desc.op_flags & ublk::abi::ioflag::kFua) != 0 && ex.canFua;
    int64_t cookie = -1;
    slot.state = State::Issued;
    switch (ublk::abi::opOf(slot.desc)) {
      case Op::Read:
        cookie = nbd_aio_pread(h, slot.data, length, offset, done, 0);
        break;
      case Op::Write:
        cookie = nbd_aio_pwrite(h, slot.data, length, offset, done, fua ? LIBNBD_CMD_FLAG_FUA : 0);
        break;
      case Op::Flush:
        cookie = nbd_aio_flush(h, done, 0);
        break;
      case Op::Discard:
        cookie = nbd_aio_trim(h, length, offset, done, fua ? LIBNBD_CMD_FLAG_FUA : 0);
        break;
      case Op::WriteZeroes: {
        const bool keep = (slot.desc.op_flags & ublk::abi::ioflag::kNoUnmap) != 0;
        cookie = nbd_aio_zero(h, length, offset, done,
                              (keep ? LIBNBD_CMD_FLAG_NO_HOLE : 0) | (fua ? LIBNBD_CMD_FLAG_FUA : 0));
        break;
      }
      default:
        slot.state = State::Idle;
        return -EOPNOTSUPP;
    }
    if (cookie != -1) return ublk::kPending;
    const int err = nbd_get_errno();
    if (connection_->dead() || err == ENOTCONN) {
      wait(slot);
      connectionLost(nbdError());
      return ublk::kPending;
    }
    slot.state = State::Idle;
    return err != 0 ? -err : -EIO;
  }

  void drive(short revents) {
    const bool wasReady = connected();
    lost_ = false;
    const bool alive = connection_->notify(revents);
    if (!alive || lost_) {
      connectionLost(alive ? "the server ended a command with ENOTCONN" : nbdError());
    } else if (!wasReady && connection_->ready()) {
      reconnected();
    }
  }

  // One-shot poll for what libnbd waits for now; a changed mask replaces the armed poll.
  void armPoll() {
    const short events = connection_->events();
    if (events == armedEvents_) return;
    if (armedEvents_ != 0) removePoll();
    if (events == 0) return;
    io_uring_prep_poll_add(sqes_->eventSqe(kPollKind | generation_), connection_->fd(), events);
    armedEvents_ = events;
  }

  void removePoll() {
    const uint64_t armed = ublk::UserData{.op = uint8_t(kPollKind | generation_), .targetEvent = true}.encode();
    io_uring_prep_poll_remove(sqes_->eventSqe(kRemoveOp), armed);
    generation_ = (generation_ + 1) & kGenerationMask;
    armedEvents_ = 0;
  }

  void armTimer() {
    const auto now = Clock::now();
    auto due = now + kMaxBackoff;
    if (!connection_) due = std::min(due, nextAttempt_);
    if (lostAt_ && !failedWaiting_) due = std::min(due, *lostAt_ + settings_.reconnectTimeout);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::max(due - now, Clock::duration(1000000)));
    timeout_ = {.tv_sec = ns.count() / 1000000000, .tv_nsec = ns.count() % 1000000000};
    io_uring_prep_timeout(sqes_->eventSqe(kTimerOp), &timeout_, 0, 0);
    timerArmed_ = true;
  }

  void connectionLost(const std::string& why) {
    if (connection_) {
      if (armedEvents_ != 0) removePoll();
      connection_.reset();
    }
    for (Slot& slot : slots_) {
      if (slot.state == State::Issued) wait(slot);
    }
    if (!lostAt_) {
      lostAt_ = Clock::now();
      failedWaiting_ = false;
      fmt::print(stderr, "ublkd serve: nbd: queue {}: lost {}: {}; reconnecting (I/O waits up to {} s)\n", queue_,
                 settings_.spec.uri, why, settings_.reconnectTimeout.count());
    }
    backoff_ = kFirstBackoff;
    nextAttempt_ = Clock::now();
    if (failing()) failWaiting();
  }

  void onTick() {
    if (failing()) failWaiting();
    const auto now = Clock::now();
    if (connection_ && now - attemptStarted_ >= kAttemptTimeout) {
      if (armedEvents_ != 0) removePoll();
      connection_.reset();
    }
    if (!connection_ && now >= nextAttempt_) attempt();
  }

  void attempt() {
    attemptStarted_ = Clock::now();
    nextAttempt_ = attemptStarted_ + backoff_;
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
    try {
      connection_ = std::make_unique<NbdConnection>(settings_.spec, settings_.name);
      if (connection_->ready()) reconnected();
    } catch (const std::exception&) {
      connection_.reset();  // the next tick tries again; the loss was said once
    }
  }

  void reconnected() {
    const NbdExport now = connection_->exportInfo();
    if (now.sizeBytes != settings_.exported.sizeBytes || (now.readOnly && !settings_.exported.readOnly)) {
      fmt::print(stderr, "ublkd serve: nbd: queue {}: {} came back as a different export ({} bytes{}); not using it\n",
                 queue_, settings_.spec.uri, now.sizeBytes, now.readOnly ? ", read-only" : "");
      if (armedEvents_ != 0) removePoll();
      connection_.reset();
      return;
    }
    const auto down = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - *lostAt_);
    fmt::print(stderr, "ublkd serve: nbd: queue {}: reconnected to {} after {} ms; reissuing {} requests\n", queue_,
               settings_.spec.uri, down.count(), waiting_.size());
    lostAt_.reset();
    std::deque<uint16_t> again;
    again.swap(waiting_);
    for (const uint16_t tag : again) {
      Slot& slot = slots_[tag];
      if (slot.state != State::Waiting) continue;
      if (!connected()) {  // lost again while reissuing
        waiting_.push_back(tag);
        continue;
      }
      const int result = issue(slot);
      if (result != ublk::kPending) sqes_->finishRequest(tag, result);
    }
  }

  void failWaiting() {
    failedWaiting_ = true;
    std::deque<uint16_t> failed;
    failed.swap(waiting_);
    for (const uint16_t tag : failed) {
      if (slots_[tag].state != State::Waiting) continue;
      slots_[tag].state = State::Idle;
      sqes_->finishRequest(tag, -EIO);
    }
  }

  const NbdSettings& settings_;
  uint16_t queue_;
  std::vector<Slot> slots_;
  std::unique_ptr<NbdConnection> connection_;
  ublk::SqeSource* sqes_ = nullptr;  // the queue's; set on every entry from it
  std::deque<uint16_t> waiting_;     // tags waiting for a connection, oldest first
  short armedEvents_ = 0;
  uint8_t generation_ = 0;
  bool lost_ = false;  // a callback saw the connection go, during the current notify
  bool timerArmed_ = false;
  __kernel_timespec timeout_{};
  std::optional<Clock::time_point> lostAt_;
  bool failedWaiting_ = false;
  Clock::time_point nextAttempt_{};
  Clock::time_point attemptStarted_{};
  std::chrono::milliseconds backoff_ = kFirstBackoff;
};

class NbdTarget final : public Target {
 public:
  NbdTarget(const DeviceSpec& spec, std::string kind)
      : kind_(std::move(kind)),
        settings_{.spec = spec.nbd,
                  .name = fmt::format("ublkd-{}", kind_),
                  .exported = {},
                  .reconnectTimeout = std::chrono::seconds(spec.reconnectTimeout),
                  .stopping = std::make_shared<std::atomic<bool>>(false)} {
    first_ = connect();
    settings_.exported = first_->exportInfo();
    geometry_ = geometryFor(spec, settings_.exported);
    if (spec.queues > 1 && !settings_.exported.canMultiConn) {
      fmt::print(stderr,
                 "ublkd serve: nbd: {} does not advertise multi-conn, so the device gets 1 queue, not the {} the spec "
                 "asks for\n",
                 spec.nbd.uri, spec.queues);
      maxQueues_ = 1;
    }
    if (settings_.exported.readOnly && !spec.readOnly) {
      fmt::print(stderr, "ublkd serve: nbd: {} is read-only, and so is the device\n", spec.nbd.uri);
    }
  }

  std::string_view name() const override { return kind_; }
  Geometry geometry() const override { return geometry_; }
  std::optional<uint16_t> maxQueues() const override { return maxQueues_; }
  void stopping() override { settings_.stopping->store(true); }

  // Queue 0 gets the connection that read the export; every other queue a connection of its own.
  std::unique_ptr<ublk::RequestHandler> makeHandler(uint16_t queue, uint16_t depth, ublk::DataPath) override {
    std::unique_ptr<NbdConnection> connection = first_ ? std::move(first_) : connect();
    return std::make_unique<NbdHandler>(settings_, queue, depth, std::move(connection));
  }

 private:
  std::unique_ptr<NbdConnection> connect() const {
    auto connection = std::make_unique<NbdConnection>(settings_.spec, settings_.name);
    connection->waitReady(kSetupTimeout);
    return connection;
  }

  static Geometry geometryFor(const DeviceSpec& spec, const NbdExport& ex) {
    const uint32_t minBlock = std::max<uint32_t>(ex.minBlock, 512);
    if (minBlock > 4096) {
      throw ServiceError(
          ErrorKind::BackendUnavailable,
          fmt::format("/uri: {} needs blocks of {} bytes; ublk devices have at most 4096", spec.nbd.uri, minBlock));
    }
    const uint32_t logical = spec.blockSize.value_or(minBlock);
    if (logical < minBlock) {
      throw SpecError("/block_size",
                      fmt::format("{} is smaller than the {} bytes {} needs", logical, minBlock, spec.nbd.uri));
    }
    const uint64_t size = spec.size.value_or(ex.sizeBytes / logical * logical);
    if (size > ex.sizeBytes) {
      throw SpecError("/size", fmt::format("{} bytes is larger than {} ({} bytes)", size, spec.nbd.uri, ex.sizeBytes));
    }
    if (size == 0) throw SpecError("/uri", fmt::format("{} is smaller than one block", spec.nbd.uri));
    const bool readOnly = spec.readOnly || ex.readOnly;
    const uint32_t physical = std::clamp<uint32_t>(ex.preferredBlock, logical, 4096);
    return {.sizeBytes = size,
            .logicalBlock = logical,
            .physicalBlock = physical,
            .readOnly = readOnly,
            .discard = !readOnly && ex.canTrim,
            .writeZeroes = !readOnly && ex.canZero,
            .discardGranularity = physical,
            .maxDiscardSectors = kMaxDiscardBytes >> 9,
            .maxWriteZeroesSectors = kMaxDiscardBytes >> 9,
            .volatileCache = ex.canFlush,
            .fua = ex.canFlush && ex.canFua,
            .maxRequestBytes = ex.maxRequest};
  }

  std::string kind_;
  NbdSettings settings_;
  Geometry geometry_;
  std::optional<uint16_t> maxQueues_;
  std::unique_ptr<NbdConnection> first_;
};

}  // namespace

std::unique_ptr<Target> makeNbdTarget(const DeviceSpec& spec, std::string_view kind) {
  return std::make_unique<NbdTarget>(spec, std::string(kind));
}

}  // namespace ublkd
