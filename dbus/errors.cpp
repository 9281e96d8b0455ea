// Named errors: bus names and exit codes per ErrorKind.
#include "errors.h"

#include <array>

namespace ublkd::bus {
namespace {

struct Entry {
  ErrorKind kind;
  int exitCode;
};

// Exit codes ublkctl documents in its --help; scripts depend on them, so never renumber.
constexpr std::array<Entry, 9> kTable{{
    {ErrorKind::Failed, 1},
    {ErrorKind::InvalidSpec, 3},
    {ErrorKind::NotFound, 4},
    {ErrorKind::Exists, 5},
    {ErrorKind::Busy, 6},
    {ErrorKind::KernelUnsupported, 7},
    {ErrorKind::PermissionDenied, 8},
    {ErrorKind::Timeout, 10},
    {ErrorKind::BackendUnavailable, 11},
}};

}  // namespace

std::string errorName(ErrorKind kind) { return std::string(kErrorPrefix) + std::string(errorKindName(kind)); }

sdbus::Error toBusError(const ServiceError& error) { return sdbus::Error(errorName(error.kind()), error.what()); }

std::optional<ErrorKind> kindOfBusError(std::string_view name) {
  if (name == "org.freedesktop.DBus.Error.AccessDenied") return ErrorKind::PermissionDenied;
  if (!name.starts_with(kErrorPrefix)) return std::nullopt;
  return errorKindFromName(name.substr(kErrorPrefix.size()));
}

int exitCode(ErrorKind kind) {
  for (const auto& entry : kTable) {
    if (entry.kind == kind) return entry.exitCode;
  }
  return 1;
}

}  // namespace ublkd::bus
