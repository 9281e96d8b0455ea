// The one table of ublkd's named D-Bus errors: each ErrorKind's bus name and ublkctl exit code.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <sdbus-c++/Error.h>

#include "service_error.h"

namespace ublkd::bus {

inline constexpr std::string_view kErrorPrefix = "org.ublk.Error.";

std::string errorName(ErrorKind kind);  // "org.ublk.Error.InvalidSpec"
sdbus::Error toBusError(const ServiceError& error);
// The kind behind a bus error name; the bus's own AccessDenied (policy) is PermissionDenied.
std::optional<ErrorKind> kindOfBusError(std::string_view name);
// ublkctl's exit code for a failure of this kind (0 is success, 1 anything unclassified).
int exitCode(ErrorKind kind);

}  // namespace ublkd::bus
