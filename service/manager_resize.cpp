// Manager::resize: a live device's new size. The checks first (state, kernel, size, target);
// then, for a loop device, its backing file grows on the Offload thread (a hung filesystem must
// not hold up the loop); then UPDATE_SIZE, asynchronous with a deadline like every control command.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include <fmt/format.h>

#include "device_spec.h"
#include "log.h"
#include "managed_device.h"
#include "manager.h"
#include "throw_errno.h"

namespace ublkd {
namespace {

constexpr std::chrono::milliseconds kUpdateSizeDeadline{10'000};
constexpr std::chrono::milliseconds kGrowDeadline{10'000};

// A number from /dev/ublkbID's sysfs directory (never blocked by a backend).
uint64_t sysfsNumber(uint32_t id, const std::string& file) {
  const std::string path = fmt::format("/sys/block/ublkb{}/{}", id, file);
  std::ifstream in(path);
  uint64_t value = 0;
  if (!(in >> value))
    throw ServiceError(ErrorKind::Failed, fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  return value;
}

// Makes the backing at least `bytes` long: a file grows (sparse), a block device must be.
void growBacking(int fd, const std::string& path, bool readOnly, uint64_t bytes) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) ublk::throwErrno(errno, "fstat " + path);
  if (S_ISBLK(st.st_mode)) {
    uint64_t size = 0;
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0) ublk::throwErrno(errno, "BLKGETSIZE64 " + path);
    if (size < bytes) {
      throw ServiceError(ErrorKind::InvalidSpec,
                         fmt::format("{} is a block device of {} bytes: it cannot grow to {}", path, size, bytes));
    }
    return;
  }
  if (static_cast<uint64_t>(st.st_size) >= bytes) return;
  if (readOnly) {
    throw ServiceError(ErrorKind::InvalidSpec, fmt::format("{} is {} bytes and the device is read-only: its file is "
                                                           "not grown to {}",
                                                           path, st.st_size, bytes));
  }
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    ublk::throwErrno(errno, fmt::format("growing {} to {} bytes", path, bytes));
  }
}

}  // namespace

void Manager::resize(const std::string& name, uint64_t bytes, bool force, ResizeDone done) {
  const auto it = devices_.find(name);
  if (it == devices_.end()) throw ServiceError(ErrorKind::NotFound, fmt::format("no device named '{}'", name));
  Managed& device = *it->second;
  const DeviceView& view = device.view;
  if (view.state != DeviceState::Live || device.handingOver || device.resizing) {
    throw ServiceError(ErrorKind::Busy, fmt::format("device '{}' is {}; only a live device can be resized", name,
                                                    device.resizing ? "being resized" : stateName(view.state)));
  }
  if ((device.kernelFlags & ublk::abi::feature::kUpdateSize) == 0) {
    throw ServiceError(ErrorKind::KernelUnsupported,
                       fmt::format("device '{}' has no UBLK_F_UPDATE_SIZE (Linux 6.16 or newer, at creation): its "
                                   "size cannot change while it is live",
                                   name));
  }
  const uint64_t block = std::max<uint64_t>(sysfsNumber(view.id, "queue/logical_block_size"), 512);
  // The kernel's size, not ours: a resize whose UPDATE_SIZE timed out may still have happened.
  const uint64_t current = sysfsNumber(view.id, "size") << 9;
  if (bytes == 0 || bytes % block != 0) {
    throw ServiceError(ErrorKind::InvalidSpec, fmt::format("size: {} bytes is not a positive multiple of the logical "
                                                           "block size of {} ({} bytes)",
                                                           bytes, view.blockDevice(), block));
  }
  if (bytes < current && !force) {
    throw ServiceError(ErrorKind::InvalidSpec,
                       fmt::format("size: {} bytes is smaller than device '{}' ({} bytes): a shrink cuts off what "
                                   "lies past the new end (a filesystem's last blocks?); ask with force to do it",
                                   bytes, name, current));
  }
  if (view.target == "loop") {
    if (view.dataPath == "mapped") {
      throw ServiceError(ErrorKind::InvalidSpec,
                         fmt::format("device '{}' serves its file through a mapping of the file's size at start (data "
                                     "path mapped); delete and create it again to change its size",
                                     name));
    }
  } else if (view.target != "null") {
    throw ServiceError(ErrorKind::InvalidSpec,
                       fmt::format("a {} device has the size of its backend: resize the export or image instead{}",
                                   view.target, view.target == "rbd" ? " (the device follows it)" : ""));
  }
  const bool readOnly = view.target == "loop" && parseDeviceSpec(view.specJson).readOnly;
  device.resizing = true;
  log::info(fmt::format("device {}: resizing from {} to {} bytes", name, view.sizeBytes, bytes), {{"DEVICE", name}});
  if (view.target == "loop") {
    growBackingThenResize(device, bytes, readOnly, std::move(done));
  } else {
    updateKernelSize(device, bytes, std::move(done));
  }
}

void Manager::growBackingThenResize(Managed& device, uint64_t bytes, bool readOnly, ResizeDone done) {
  const std::string name = device.view.name;
  const Managed* which = &device;
  // The open descriptor, or (a device adopted from an earlier ublkd) the path opened again.
  auto fd = std::make_shared<ublk::UniqueFd>(device.backing ? ::fcntl(device.backing->fd(), F_DUPFD_CLOEXEC, 0) : -1);
  auto finish = [this, name, which, done](const ServiceError& error) {
    if (Managed* still = lookup(name, which)) still->resizing = false;
    log::warning(fmt::format("device {}: resize failed: {}", name, error.what()), {{"DEVICE", name}});
    done(&error);
  };
  offload_.run(
      [this, name, which, fd, readOnly, bytes, finish, done, spec = device.view.specJson,
       identity = device.backingIdentity, path = device.view.backing]() -> Offload::Callback {
        try {
          std::optional<BackingStore> reopened;
          if (!*fd) {
            if (!identity) throw ServiceError(ErrorKind::Failed, "the backing store is not open");
            reopened.emplace(reopenBacking(spec, *identity));
          }
          growBacking(reopened ? reopened->fd() : fd->get(), path, readOnly, bytes);
          return [this, name, which, bytes, finish, done] {
            Managed* device = lookup(name, which);
            if (device == nullptr) {
              finish(ServiceError(ErrorKind::NotFound, fmt::format("device '{}' went during the resize", name)));
            } else if (device->view.state != DeviceState::Live || device->handingOver) {
              finish(ServiceError(ErrorKind::Busy, fmt::format("device '{}' became {} during the resize; its backing "
                                                               "file grew, the device did not",
                                                               name, stateName(device->view.state))));
            } else {
              updateKernelSize(*device, bytes, done);
            }
          };
        } catch (const ServiceError& e) {
          return [finish, e] { finish(e); };
        } catch (const std::exception& e) {
          return [finish, why = std::string(e.what())] { finish(ServiceError(ErrorKind::Failed, why)); };
        }
      },
      kGrowDeadline,
      [finish, path = device.view.backing] {
        finish(ServiceError(ErrorKind::Timeout, fmt::format("growing {} did not finish within {} s: its filesystem "
                                                            "is not answering",
                                                            path, kGrowDeadline.count() / 1000)));
      });
}

void Manager::updateKernelSize(Managed& device, uint64_t bytes, ResizeDone done) {
  const std::string name = device.view.name;
  const Managed* which = &device;
  const ublk::ControlCommand command = ublk::ControlCommand::updateSize(device.view.id, bytes >> 9);
  commands_.run(command, kUpdateSizeDeadline, [this, name, which, bytes, command, done](int result, auto) {
    Managed* device = lookup(name, which);
    if (device != nullptr) device->resizing = false;
    if (result < 0) {
      const ServiceError error(result == -ETIMEDOUT ? ErrorKind::Timeout : ErrorKind::Failed,
                               commandError(command, result, kUpdateSizeDeadline));
      log::warning(fmt::format("device {}: resize failed: {}", name, error.what()), {{"DEVICE", name}});
      done(&error);
      return;
    }
    if (device != nullptr) {
      log::info(fmt::format("device {}: resized from {} to {} bytes", name, device->view.sizeBytes, bytes),
                {{"DEVICE", name}});
      device->view.sizeBytes = bytes;
      writeRecord(*device);
      if (listener_ != nullptr) listener_->deviceChanged(device->view);
    }
    done(nullptr);
  });
}

}  // namespace ublkd
