// devicePath: a device name's one object path.
#include "bus_names.h"

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <system_error>

#include <systemd/sd-bus.h>

namespace ublkd::bus {

std::string devicePath(const std::string& name) {
  char* encoded = nullptr;
  const int r = sd_bus_path_encode("/org/ublk/Device", name.c_str(), &encoded);
  if (r < 0) throw std::system_error(-r, std::generic_category(), "sd_bus_path_encode");
  const std::unique_ptr<char, decltype(&std::free)> owned(encoded, &std::free);
  return owned.get();
}

}  // namespace ublkd::bus
