// Queue: one hardware queue of a ublk device, served from its own thread on its own io_uring.
// It maps the queue's descriptor array, owns one data buffer per tag (copy mode), FETCHes every
// tag, then loops: reap a batch of CQEs, hand new requests to the RequestHandler, commit results
// with COMMIT_AND_FETCH, and submit the whole batch (target I/O included) with one io_uring_enter.
#pragma once

#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "abi.h"
#include "data_path.h"
#include "mapped_region.h"
#include "ring.h"

namespace ublk {

// Where a handler gets SQEs for its own I/O: a queue's ring, or any ring in a unit test.
// The SQE comes cleared and tagged; its CQE reaches RequestHandler::complete with `op`.
// Handler fd i is fixed file i + 1 (set IOSQE_FIXED_FILE after io_uring_prep_*).
class SqeSource {
 public:
  virtual io_uring_sqe* targetSqe(uint16_t tag, uint8_t op) = 0;
  // An SQE for the handler's own work that belongs to no request (a socket's poll, a timer); its
  // CQE reaches RequestHandler::onEvent with `op`. The queue does not wait for these to drain.
  virtual io_uring_sqe* eventSqe(uint8_t op) = 0;
  // Finishes a request whose start or complete returned kPending, from anywhere on the queue's
  // thread (a library's completion callback, an event): `result` is bytes or -errno.
  virtual void finishRequest(uint16_t tag, int result) = 0;

 protected:
  ~SqeSource() = default;
};

// The result of a request that is not finished yet: its handler queued I/O for it.
constexpr int kPending = INT_MIN;

// Serves one queue's requests; called only on the queue's thread, so it needs no locks.
// start and complete return the result to commit now (bytes transferred, or -errno), or kPending.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // `data` is where the request's data is (Copy, HandlerMapped) or nullptr (None, ZeroCopy).
  virtual int start(SqeSource& sqes, uint16_t tag, const abi::IoDesc& desc, std::byte* data) = 0;
  virtual int complete(SqeSource& sqes, uint16_t tag, uint8_t op, int res) = 0;
  // HandlerMapped only: the memory holding the data of the request `desc` describes (for a WRITE,
  // where the kernel copies its data before start); start gets the same address.
  virtual std::byte* dataAddress(uint16_t /*tag*/, const abi::IoDesc&) { return nullptr; }
  // The CQE of an SQE from eventSqe.
  virtual void onEvent(SqeSource&, uint8_t /*op*/, int /*res*/) {}
  // Once per batch, after its CQEs are handled and before the queue submits and sleeps: the
  // place to arm the polls the handler's state now needs.
  virtual void beforeWait(SqeSource&) {}
};

// Watches the requests a queue serves (statistics): called on the queue's thread, in order. Every
// call of one batch of completions happens "at" the time batchBegins gave, read once per batch.
class RequestObserver {
 public:
  virtual void batchBegins(std::chrono::steady_clock::time_point now) = 0;
  // The kernel handed over a request (for a WRITE with NEED_GET_DATA: at its first CQE).
  virtual void arrived(uint16_t tag, const abi::IoDesc& desc) = 0;
  // The handler got the request.
  virtual void started(uint16_t tag) = 0;
  // Its result is committed: bytes, or -errno.
  virtual void committed(uint16_t tag, int result) = 0;

 protected:
  ~RequestObserver() = default;
};

class Queue final : public SqeSource {
 public:
  struct Config {
    uint32_t devId;
    uint16_t id;
    uint16_t depth;
    uint32_t bufferBytes;  // per tag: the device's max_io_buf_bytes
    DataPath dataPath;
    int charFd;                  // /dev/ublkcN, shared by the device's queues
    std::span<const int> files;  // the handler's fds; registered as fixed files 1..n
    int stopFd = -1;             // an eventfd: once readable, run() returns when handler I/O drains
    // After a batch, keep collecting new requests without sleeping for this long: a request that
    // arrives meanwhile costs no sleep and wakeup on either side. 0 sleeps at once.
    std::chrono::microseconds pollWindow{0};
    RequestObserver* observer = nullptr;  // statistics; none when nullptr
  };

  // Must run on the queue's own thread: the ring is created for a single issuer.
  explicit Queue(const Config& config);
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  // Queues and submits a FETCH for every tag. START_DEV (or END_USER_RECOVERY) may follow.
  void fetchAll();
  // Serves until every tag is aborted (STOP_DEV, or the device going away), or stopFd fires, and
  // no request the handler started is left unfinished. Once stopFd fires no new request starts: what arrives is
  // left uncommitted, for the kernel to requeue (recovery) or fail when /dev/ublkcN closes. Throws on a ublk command
  // the kernel rejects.
  void run(RequestHandler& handler);

  io_uring_sqe* targetSqe(uint16_t tag, uint8_t op) override;
  io_uring_sqe* eventSqe(uint8_t op) override;
  void finishRequest(uint16_t tag, int result) override;

  uint16_t id() const { return config_.id; }
  unsigned ringFlags() const { return ring_->setupFlags(); }

 private:
  io_uring_sqe* nextSqe();
  void prepIoCmd(uint32_t op, uint16_t tag, int result, uint8_t kind = 0);
  void startRequest(uint16_t tag, RequestHandler& handler);
  void onNewRequest(uint16_t tag, RequestHandler& handler);
  void onIoCmdCqe(uint16_t tag, int res, RequestHandler& handler);
  void finish(uint16_t tag, int result);
  unsigned reap(RequestHandler& handler);
  std::byte* tagBuffer(uint16_t tag) const;

  // Declared before ring_ so they outlive it: the ring's teardown may still touch them.
  MappedRegion descriptors_;
  MappedRegion buffers_;
  Config config_;
  std::unique_ptr<Ring> ring_;
  std::vector<std::byte*> data_;  // per tag: the address given to the kernel with its next command
  bool stopping_ = false;
  unsigned abortedTags_ = 0;
  unsigned targetInFlight_ = 0;
  unsigned started_ = 0;  // requests handed to the handler and not yet committed
  // ZeroCopy: per tag, whether we registered its buffer ourselves (the kernel's registration
  // failed), so we unregister it before the commit.
  std::vector<bool> registeredByUs_;
};

}  // namespace ublk
