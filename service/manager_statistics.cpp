// Manager::statistics: a device's counters, read from the file its queue daemons keep
// (stats_writer.h) in the run directory, and the rates since the device's previous sample.
#include <fmt/format.h>

#include "managed_device.h"
#include "manager.h"

namespace ublkd {

stats::Report Manager::statistics(const std::string& name) {
  const auto it = devices_.find(name);
  if (it == devices_.end()) throw ServiceError(ErrorKind::NotFound, fmt::format("no device named '{}'", name));
  Managed& device = *it->second;
  std::optional<stats::Snapshot> snapshot;
  try {
    snapshot = stats::readSnapshot(records_.statsPath(name));
  } catch (const std::exception& e) {
    throw ServiceError(ErrorKind::Failed, fmt::format("cannot read the statistics of '{}': {}", name, e.what()));
  }
  if (!snapshot) {
    throw ServiceError(ErrorKind::Busy,
                       fmt::format("device '{}' has no statistics yet: it is {}", name, stateName(device.view.state)));
  }
  return device.stats.report(std::move(*snapshot));
}

}  // namespace ublkd
