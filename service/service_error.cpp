// ServiceError: kind names and the classification of setup failures.
#include "service_error.h"

#include <array>
#include <cerrno>
#include <system_error>
#include <utility>

#include "device_spec.h"

namespace ublkd {
namespace {

constexpr std::array<std::pair<ErrorKind, std::string_view>, 9> kNames{{
    {ErrorKind::InvalidSpec, "InvalidSpec"},
    {ErrorKind::NotFound, "NotFound"},
    {ErrorKind::Exists, "Exists"},
    {ErrorKind::Busy, "Busy"},
    {ErrorKind::KernelUnsupported, "KernelUnsupported"},
    {ErrorKind::PermissionDenied, "PermissionDenied"},
    {ErrorKind::Timeout, "Timeout"},
    {ErrorKind::BackendUnavailable, "BackendUnavailable"},
    {ErrorKind::Failed, "Failed"},
}};

}  // namespace

std::string_view errorKindName(ErrorKind kind) {
  for (const auto& [k, name] : kNames) {
    if (k == kind) return name;
  }
  return "Failed";
}

std::optional<ErrorKind> errorKindFromName(std::string_view name) {
  for (const auto& [k, n] : kNames) {
    if (n == name) return k;
  }
  return std::nullopt;
}

ErrorKind classify(const std::exception& e) {
  if (const auto* service = dynamic_cast<const ServiceError*>(&e)) return service->kind();
  if (dynamic_cast<const SpecError*>(&e) != nullptr) return ErrorKind::InvalidSpec;
  if (const auto* sys = dynamic_cast<const std::system_error*>(&e)) {
    switch (sys->code().value()) {
      case EPERM:
      case EACCES:
        return ErrorKind::PermissionDenied;
      case ENOENT:  // no /dev/ublk-control: ublk_drv is not loaded
      case EOPNOTSUPP:
        return ErrorKind::KernelUnsupported;
      default:
        break;
    }
  }
  return ErrorKind::Failed;
}

}  // namespace ublkd
