// ServiceError: a failure the daemon reports to its callers, tagged with the kind of failure.
// Each kind maps to one named D-Bus error (dbus/errors.h) and one ublkctl exit code; the kind's
// name is also what `ublkd serve --status-fd` writes when setup fails.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ublkd {

// Timeout: a deadline passed while the kernel or a backing store did not answer (a hung disk,
// a queue daemon stuck in the kernel); the operation may still complete later.
// BackendUnavailable: the storage a spec names could not be reached or opened (an NBD server
// that refuses or lacks the export, a TLS handshake that failed, a Ceph pool or image that is not
// there, an image QEMU cannot open).
enum class ErrorKind {
  InvalidSpec,
  NotFound,
  Exists,
  Busy,
  KernelUnsupported,
  PermissionDenied,
  Timeout,
  BackendUnavailable,
  Failed
};

std::string_view errorKindName(ErrorKind kind);  // "InvalidSpec", ...
std::optional<ErrorKind> errorKindFromName(std::string_view name);

class ServiceError : public std::runtime_error {
 public:
  ServiceError(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// The kind of an exception thrown while setting a device up: spec errors, missing kernel
// support (no ublk_drv, unsupported command or flag), permission errors, or anything else.
ErrorKind classify(const std::exception& e);

}  // namespace ublkd
