// runDaemon: `ublkd daemon`, the service. Wires the control device, the Manager, the bus and the
// event loop together, brings up configured devices, and talks to systemd (sd_notify).
#pragma once

#include <string_view>
#include <vector>

namespace ublkd {

// Returns the process exit code.
int runDaemon(const std::vector<std::string_view>& args, std::string_view usage);

}  // namespace ublkd
