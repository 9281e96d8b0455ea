// The qcow2 target: a disk image in any format QEMU reads (qcow2 with its backing chain, raw,
// vmdk, vhdx, ...), opened by a qemu-storage-daemon that the queue daemon runs for the device and
// served through the nbd target over the daemon's private socket. Nothing here parses an image.
#include <chrono>

#include <fmt/format.h>

#include "qemu_storage_daemon.h"
#include "service_error.h"
#include "target.h"

namespace ublkd {
namespace {

using namespace std::chrono_literals;

// How long setup retries a daemon refused the image lock: a recovering queue daemon's
// predecessor's qemu-storage-daemon may still be on its way out.
constexpr auto kLockRetry = 5s;
constexpr int kExitWaitMs = 2000;

class Qcow2Target final : public Target {
 public:
  explicit Qcow2Target(const DeviceSpec& spec) : daemon_(spec), nbd_(connect(spec)) {}

  std::string_view name() const override { return "qcow2"; }
  Geometry geometry() const override { return nbd_->geometry(); }
  std::optional<uint16_t> maxQueues() const override { return nbd_->maxQueues(); }
  void stopping() override { nbd_->stopping(); }
  std::unique_ptr<ublk::RequestHandler> makeHandler(uint16_t queue, uint16_t depth, ublk::DataPath path) override {
    return nbd_->makeHandler(queue, depth, path);
  }

 private:
  // The nbd target on the daemon's export; when that fails and the daemon is gone, its own words
  // say why (the image is locked, corrupt, not of its format ...).
  std::unique_ptr<Target> connect(const DeviceSpec& spec) {
    DeviceSpec exported = spec;
    exported.target = TargetKind::Nbd;
    exported.nbd = NbdSpec{};
    exported.nbd.uri = daemon_.uri();
    const auto deadline = std::chrono::steady_clock::now() + kLockRetry;
    while (true) {
      try {
        return makeNbdTarget(exported, "qcow2");
      } catch (const ServiceError& e) {
        if (e.kind() != ErrorKind::BackendUnavailable || !daemon_.exited(kExitWaitMs)) throw;
        if (!daemon_.lockRefused()) {
          throw ServiceError(
              ErrorKind::BackendUnavailable,
              fmt::format("/path: qemu-storage-daemon cannot serve {}: {}", spec.path, daemon_.lastError()));
        }
        if (std::chrono::steady_clock::now() >= deadline || !daemon_.running(kExitWaitMs * 2)) {
          throw ServiceError(ErrorKind::Busy,
                             fmt::format("/path: {} is in use by another process: {}", spec.path, daemon_.lastError()));
        }
      }
    }
  }

  QemuStorageDaemon daemon_;  // outlives the connections to it
  std::unique_ptr<Target> nbd_;
};

}  // namespace

std::unique_ptr<Target> makeQcow2Target(const DeviceSpec& spec) { return std::make_unique<Qcow2Target>(spec); }

}  // namespace ublkd
