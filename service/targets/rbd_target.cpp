// The rbd target: a Ceph RBD image through librbd's asynchronous calls. One cluster connection
// and one image handle per device, shared by its queues (librbd is thread-safe, and one handle
// per queue would fight over the image's exclusive lock). librbd completes requests on its own
// threads: the callback pushes the request onto its queue's lock-free stack and, when that stack
// was empty, writes the queue's eventfd, whose read is kept armed on the queue's ring. The queue
// thread then takes the whole stack and finishes the requests; no lock on the I/O path.
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "abi.h"
#include "service_error.h"
#include "target.h"
#include "throw_errno.h"
#include "unique_fd.h"

namespace ublkd {
namespace {

using ublk::abi::IoDesc;
using ublk::abi::Op;

constexpr uint8_t kWakeOp = 1;
// How long connecting to the monitors may take before the spec's cluster counts as unreachable.
constexpr const char* kMountTimeoutSeconds = "15";
// RBD discards and zeroes are split by the block layer into pieces of at most this.
constexpr uint32_t kMaxDiscardBytes = 1u << 30;

[[noreturn]] void unavailable(const std::string& field, const std::string& what, int err) {
  throw ServiceError(ErrorKind::BackendUnavailable, fmt::format("{}: {}: {}", field, what, std::strerror(-err)));
}

struct Cluster {
  rados_t handle = nullptr;
  ~Cluster() {
    if (handle != nullptr) rados_shutdown(handle);
  }
};
struct Pool {
  rados_ioctx_t handle = nullptr;
  ~Pool() {
    if (handle != nullptr) rados_ioctx_destroy(handle);
  }
};
struct Image {
  rbd_image_t handle = nullptr;
  ~Image() {
    if (handle != nullptr) rbd_close(handle);
  }
};

class RbdHandler final : public ublk::RequestHandler {
 public:
  RbdHandler(rbd_image_t image, uint16_t depth) : image_(image), slots_(depth), wake_(::eventfd(0, EFD_CLOEXEC)) {
    if (!wake_) ublk::throwErrno(errno, "eventfd (rbd completions)");
    for (uint16_t tag = 0; tag < depth; ++tag) slots_[tag] = {.handler = this, .tag = tag};
  }

  int start(ublk::SqeSource&, uint16_t tag, const IoDesc& desc, std::byte* data) override {
    Slot& slot = slots_[tag];
    slot.op = ublk::abi::opOf(desc);
    slot.length = desc.nr_sectors << 9;
    const uint64_t offset = desc.start_sector << 9;
    const bool fua = (desc.op_flags & ublk::abi::ioflag::kFua) != 0;
    rbd_completion_t completion = nullptr;
    if (const int r = rbd_aio_create_completion(&slot, onComplete, &completion); r < 0) return r;
    auto* buffer = reinterpret_cast<char*>(data);
    int r = 0;
    switch (slot.op) {
      case Op::Read:
        r = rbd_aio_read2(image_, offset, slot.length, buffer, completion, 0);
        break;
      case Op::Write:
        r = rbd_aio_write2(image_, offset, slot.length, buffer, completion, fua ? LIBRADOS_OP_FLAG_FADVISE_FUA : 0);
        break;
      case Op::Flush:
        r = rbd_aio_flush(image_, completion);
        break;
      case Op::Discard:
        r = rbd_aio_discard(image_, offset, slot.length, completion);
        break;
      case Op::WriteZeroes: {
        const bool keep = (desc.op_flags & ublk::abi::ioflag::kNoUnmap) != 0;
        r = rbd_aio_write_zeroes(image_, offset, slot.length, completion,
                                 keep ? RBD_WRITE_ZEROES_FLAG_THICK_PROVISION : 0,
                                 fua ? LIBRADOS_OP_FLAG_FADVISE_FUA : 0);
        break;
      }
      default:
        r = -EOPNOTSUPP;
    }
    if (r < 0) {
      rbd_aio_release(completion);
      return r;
    }
    return ublk::kPending;
  }

  int complete(ublk::SqeSource&, uint16_t, uint8_t, int res) override { return res; }  // no per-request SQEs

  void onEvent(ublk::SqeSource& sqes, uint8_t, int) override {
    armed_ = false;
    // The stack is newest first: finish in the order librbd completed them.
    Slot* reversed = nullptr;
    for (Slot* slot = done_.exchange(nullptr, std::memory_order_acquire); slot != nullptr;) {
      Slot* next = slot->next;
      slot->next = reversed;
      reversed = slot;
      slot = next;
    }
    for (Slot* slot = reversed; slot != nullptr; slot = slot->next) sqes.finishRequest(slot->tag, result(*slot));
  }

  void beforeWait(ublk::SqeSource& sqes) override {
    if (armed_) return;
    io_uring_prep_read(sqes.eventSqe(kWakeOp), wake_.get(), &wakeCount_, sizeof(wakeCount_), 0);
    armed_ = true;
  }

 private:
  struct Slot {
    RbdHandler* handler = nullptr;
    uint16_t tag = 0;
    Op op = Op::Read;
    uint32_t length = 0;
    int64_t returned = 0;  // librbd's result, written on its thread before the push
    Slot* next = nullptr;
  };

  static int result(const Slot& slot) {
    if (slot.returned < 0) return static_cast<int>(slot.returned);
    return slot.op == Op::Read || slot.op == Op::Write ? static_cast<int>(slot.length) : 0;
  }

  // On a librbd thread.
  static void onComplete(rbd_completion_t completion, void* arg) {
    auto* slot = static_cast<Slot*>(arg);
    slot->returned = rbd_aio_get_return_value(completion);
    rbd_aio_release(completion);
    slot->handler->push(slot);
  }

  void push(Slot* slot) {
    Slot* head = done_.load(std::memory_order_relaxed);
    do {
      slot->next = head;
    } while (!done_.compare_exchange_weak(head, slot, std::memory_order_release, std::memory_order_relaxed));
    if (head == nullptr) {
      // The stack was empty: the queue thread may be asleep. An eventfd write fails only on a
      // full counter, which cannot happen (the queue reads it on every wakeup); if it did, the
      // counter is non-zero and the armed read completes anyway.
      const uint64_t one = 1;
      if (::write(wake_.get(), &one, sizeof(one)) != sizeof(one)) return;
    }
  }

  rbd_image_t image_;
  std::vector<Slot> slots_;
  ublk::UniqueFd wake_;
  std::atomic<Slot*> done_{nullptr};
  uint64_t wakeCount_ = 0;  // the armed read's buffer
  bool armed_ = false;
};

class RbdTarget final : public Target {
 public:
  explicit RbdTarget(const DeviceSpec& spec) : spec_(spec.rbd), readOnly_(spec.readOnly) {
    const RbdSpec& rbd = spec.rbd;
    const std::string client = "client." + (rbd.clientId.empty() ? std::string("admin") : rbd.clientId);
    const std::string clusterName = rbd.cluster.empty() ? "ceph" : rbd.cluster;
    if (const int r = rados_create2(&cluster_.handle, clusterName.c_str(), client.c_str(), 0); r < 0) {
      unavailable("/client_id", fmt::format("cannot make a Ceph client {} of cluster {}", client, clusterName), r);
    }
    // ublkd's defaults first, so that the cluster's ceph.conf may say otherwise.
    set("client_mount_timeout", kMountTimeoutSeconds);
    set("rados_mon_op_timeout", kMountTimeoutSeconds);
    if (const int r = rados_conf_read_file(cluster_.handle, rbd.cephConf.empty() ? nullptr : rbd.cephConf.c_str());
        r < 0) {
      throw SpecError("/ceph_conf", fmt::format("cannot read {}: {}", rbd.cephConf.empty() ? "ceph.conf" : rbd.cephConf,
                                                std::strerror(-r)));
    }
    if (!rbd.keyring.empty()) set("keyring", rbd.keyring);
    if (const int r = rados_connect(cluster_.handle); r < 0) {
      unavailable("/ceph_conf", fmt::format("cannot connect to Ceph cluster {} as {}", clusterName, client), r);
    }
    if (const int r = rados_ioctx_create(cluster_.handle, rbd.pool.c_str(), &pool_.handle); r < 0) {
      unavailable("/pool", fmt::format("cannot open pool '{}'", rbd.pool), r);
    }
    const int r = readOnly_ ? rbd_open_read_only(pool_.handle, rbd.image.c_str(), &image_.handle, nullptr)
                            : rbd_open(pool_.handle, rbd.image.c_str(), &image_.handle, nullptr);
    if (r < 0) unavailable("/image", fmt::format("cannot open image '{}' in pool '{}'", rbd.image, rbd.pool), r);
    uint64_t size = 0;
    if (const int s = rbd_get_size(image_.handle, &size); s < 0) {
      unavailable("/image", fmt::format("cannot read the size of '{}'", rbd.image), s);
    }
    size_ = size;
    geometry_ = geometryFor(spec, size);
  }

  ~RbdTarget() override {
    if (watching_) rbd_update_unwatch(image_.handle, watch_);
  }

  std::string_view name() const override { return "rbd"; }
  Geometry geometry() const override { return geometry_; }
  std::unique_ptr<ublk::RequestHandler> makeHandler(uint16_t, uint16_t depth, ublk::DataPath) override {
    return std::make_unique<RbdHandler>(image_.handle, depth);
  }

  void watchSize(std::function<void(uint64_t)> onResize) override {
    onResize_ = std::move(onResize);
    if (const int r = rbd_update_watch(image_.handle, &watch_, onUpdate, this); r < 0) {
      fmt::print(stderr, "ublkd serve: rbd: cannot watch {}/{} for resizes: {}\n", spec_.pool, spec_.image,
                 std::strerror(-r));
      return;
    }
    watching_ = true;
  }

 private:
  void set(const char* option, const std::string& value) {
    if (const int r = rados_conf_set(cluster_.handle, option, value.c_str()); r < 0) {
      throw std::runtime_error(fmt::format("rados_conf_set {}: {}", option, std::strerror(-r)));
    }
  }

  // On a librbd thread, when the image's header changed (a resize, a snapshot, a lock ...).
  static void onUpdate(void* arg) {
    auto* self = static_cast<RbdTarget*>(arg);
    uint64_t size = 0;
    if (rbd_get_size(self->image_.handle, &size) < 0 || size == self->size_.exchange(size)) return;
    self->onResize_(size);
  }

  static Geometry geometryFor(const DeviceSpec& spec, uint64_t imageBytes) {
    const uint32_t logical = spec.blockSize.value_or(512);
    const uint64_t size = spec.size.value_or(imageBytes / logical * logical);
    if (size > imageBytes) {
      throw SpecError("/size", fmt::format("{} bytes is larger than the image {}/{} ({} bytes)", size, spec.rbd.pool,
                                           spec.rbd.image, imageBytes));
    }
    if (size == 0)
      throw SpecError("/image", fmt::format("{}/{} is smaller than one block", spec.rbd.pool, spec.rbd.image));
    return {.sizeBytes = size,
            .logicalBlock = logical,
            .physicalBlock = 4096,
            .readOnly = spec.readOnly,
            .discard = !spec.readOnly,
            .writeZeroes = !spec.readOnly,
            .discardGranularity = 4096,
            .maxDiscardSectors = kMaxDiscardBytes >> 9,
            .maxWriteZeroesSectors = kMaxDiscardBytes >> 9,
            .volatileCache = true,
            .fua = true};
  }

  RbdSpec spec_;
  bool readOnly_;
  // Declared in the order they are opened: closed in reverse.
  Cluster cluster_;
  Pool pool_;
  Image image_;
  std::atomic<uint64_t> size_ = 0;
  Geometry geometry_;
  std::function<void(uint64_t)> onResize_;
  uint64_t watch_ = 0;
  bool watching_ = false;
};

}  // namespace

std::unique_ptr<Target> makeRbdTarget(const DeviceSpec& spec) { return std::make_unique<RbdTarget>(spec); }

}  // namespace ublkd
