// Target: what serves a device's requests (null, loop, ...). A target describes the device it
// backs (Geometry) and makes one RequestHandler per queue; handlers are asynchronous: they queue
// their own SQEs on the queue's ring and finish each request on its CQE.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "backing_store.h"
#include "device_spec.h"
#include "queue.h"

namespace ublkd {

// The largest request a device takes (its max_io_buf_bytes): 512 KiB keeps a queue's per-tag
// buffers (depth x this) modest.
inline constexpr uint32_t kMaxIoBytes = 512 * 1024;

struct Geometry {
  uint64_t sizeBytes = 0;
  uint32_t logicalBlock = 512;
  uint32_t physicalBlock = 4096;
  bool readOnly = false;
  bool discard = false;                          // DISCARD is served
  bool writeZeroes = false;                      // WRITE_ZEROES is served
  uint32_t discardGranularity = 0;               // bytes; 0 = the physical block
  uint32_t maxDiscardSectors = UINT32_MAX >> 9;  // per request
  uint32_t maxWriteZeroesSectors = UINT32_MAX >> 9;
  bool volatileCache = true;     // FLUSH means something
  bool fua = true;               // with volatileCache: FUA writes are served (else the kernel flushes after them)
  uint32_t maxRequestBytes = 0;  // the largest request the target takes; 0 = any the device allows
  // ZeroCopy: the memory alignment the backend needs of request pages (O_DIRECT's), in bytes;
  // 0 = the kernel's default.
  uint32_t dmaAlignment = 0;
};

class Target {
 public:
  virtual ~Target() = default;
  virtual std::string_view name() const = 0;
  virtual Geometry geometry() const = 0;
  // The fds each queue registers as fixed files (handler fd i is fixed file i + 1).
  virtual std::vector<int> files() const { return {}; }
  // The data path the target serves best, given whether the kernel can lend requests' pages
  // (AUTO_BUF_REG, and not turned off with UBLKD_ZERO_COPY=0). The device gets what the kernel
  // grants (Copy on kernels without the feature; a recovered device keeps its flags), and every
  // handler must serve Copy too.
  virtual ublk::DataPath preferredDataPath(bool /*zeroCopy*/) const { return ublk::DataPath::Copy; }
  virtual std::unique_ptr<ublk::RequestHandler> makeHandler(uint16_t queue, uint16_t depth, ublk::DataPath path) = 0;
  // The most queues the target can serve (an NBD server without multi-conn: one); nullopt = any.
  virtual std::optional<uint16_t> maxQueues() const { return std::nullopt; }
  // The device is about to be stopped (from the server's main thread): I/O that waits for a
  // backend to come back should fail now rather than hold up STOP_DEV.
  virtual void stopping() {}
  // Once the device is live: calls onResize (from any thread) with the backing's new size in
  // bytes whenever it changes in the backend (an RBD image resized in the cluster).
  virtual void watchSize(std::function<void(uint64_t)> /*onResize*/) {}
};

// Makes the spec's target and checks it against what it serves; throws SpecError naming the field
// at fault. A loop target serves `backing` (opened by ublkd and passed down), or opens the spec's
// path itself when given none.
std::unique_ptr<Target> makeTarget(const DeviceSpec& spec, std::optional<BackingStore> backing = std::nullopt);

std::unique_ptr<Target> makeNullTarget(const DeviceSpec& spec);
std::unique_ptr<Target> makeLoopTarget(const DeviceSpec& spec, BackingStore backing);
// `kind` is the name the target reports ("nbd", or the target built on it).
std::unique_ptr<Target> makeNbdTarget(const DeviceSpec& spec, std::string_view kind = "nbd");
std::unique_ptr<Target> makeQcow2Target(const DeviceSpec& spec);
std::unique_ptr<Target> makeRbdTarget(const DeviceSpec& spec);

}  // namespace ublkd
