// generateBootUnits: what ublk-generator writes for the devices started at boot, from what it read
// (specs, enabled units, /etc/fstab), without touching the file system: main.cpp reads and writes.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace ublkd::generator {

// One file of the spec directory: NAME.json, its text, or why it could not be read.
struct SpecFile {
  std::string name;  // the file name without ".json"
  std::string text;
  std::string readError;  // "" when text is the file's content
};

struct BootConfig {
  std::vector<SpecFile> specs;
  std::set<std::string> enabled;  // instances of ublk@ linked in a .wants/ or .requires/ of /etc/systemd/system
  std::string fstab;              // "" when there is none
  // Where these came from and where the template unit lies, for messages and links.
  std::string specDir = "/etc/ublk.d";
  std::string fstabPath = "/etc/fstab";
  std::string templateUnit = "/lib/systemd/system/ublk@.service";
};

// Paths are relative to the generator's output directory.
struct BootUnits {
  std::map<std::string, std::string> files;  // path -> content
  std::map<std::string, std::string> links;  // path -> target
  std::vector<std::string> warnings;         // one line each, naming the file (and line or field)
};

// The drop-in name, in ublk@NAME.service.d/ and in each ordered mount unit's .d/.
inline constexpr const char* kDropIn = "50-ublk-generator.conf";

// For each device with "boot": true or an enabled ublk@NAME: a drop-in for ublk@NAME.service
// (DefaultDependencies=no with shutdown ordering kept, what its backing needs, Before= the mounts of
// /dev/ublk/by-name/NAME), a drop-in for each such mount (Requires=/After= the device), and for
// "boot": true the multi-user.target.wants link. A bad spec, a line that would make an ordering
// cycle and a line that cannot be matched to a device are warnings and are left out.
BootUnits generateBootUnits(const BootConfig& config);

}  // namespace ublkd::generator
