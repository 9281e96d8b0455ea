// generateBootUnits: specs and fstab lines to drop-ins and links, with the reasons for what is left out.
//
// Why the ordering looks as it does: ublk@NAME.service needs ublkd.service, which needs the bus, and
// dbus.service comes after basic.target, itself after sysinit.target and local-fs.target. So a
// mount on a ublk device cannot be one that local-fs.target (or basic.target: /var, /tmp) waits for:
// it must be a "network" mount (_netdev, ordered into remote-fs.target like NBD or iSCSI), nofail
// (not ordered before local-fs.target) or noauto, and must not hold the device's own backing file.
#include "boot_units.h"

#include <array>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "device_spec.h"
#include "fstab.h"
#include "unit_name.h"

namespace ublkd::generator {
namespace {

constexpr std::string_view kByName = "/dev/ublk/by-name/";

// Paths that sysinit.target or basic.target need (the journal, the random seed, the bus's state,
// /tmp, /var/tmp): a mount point at or above one of them comes before the bus can serve a device.
constexpr std::array<std::string_view, 8> kEarlyPaths = {
    "/usr", "/etc", "/run", "/tmp", "/var/tmp", "/var/log/journal", "/var/lib/systemd", "/var/lib/dbus"};

struct Device {
  DeviceSpec spec;
  bool enabled = false;
  std::vector<std::string> mounts;  // mount units to come before
};

// The state of a name the fstab may refer to.
struct Known {
  std::optional<Device> device;  // set when the spec is valid and the device starts at boot
  std::string why;               // otherwise: why it is not ordered
};

std::string unitOf(const std::string& name) { return fmt::format("ublk@{}.service", name); }

bool isEarlyMountPoint(const std::string& where) {
  if (where == "/") return true;
  for (const std::string_view early : kEarlyPaths) {
    if (isUnder(early, where)) return true;
  }
  return false;
}

// A device node the by-name link cannot be told from in advance: /dev/ublkbN, /dev/ublkbNpM.
bool isNumberedUblkNode(std::string_view what) {
  constexpr std::string_view kNode = "/dev/ublkb";
  return what.starts_with(kNode) && what.size() > kNode.size() && what[kNode.size()] >= '0' &&
         what[kNode.size()] <= '9';
}

class Generator {
 public:
  explicit Generator(const BootConfig& config) : config_(config) {}

  BootUnits run() {
    readSpecs();
    for (const std::string& name : config_.enabled) {
      if (!known_.contains(name)) {
        warn("{} is enabled, but there is no {}; not ordered", unitOf(name), specPath(name));
      }
    }
    for (const FstabEntry& entry : parseFstab(config_.fstab)) orderMount(entry);
    for (auto& [name, state] : known_) {
      if (state.device) writeDevice(name, *state.device);
    }
    return std::move(out_);
  }

 private:
  template <typename... Args>
  void warn(fmt::format_string<Args...> format, Args&&... args) {
    out_.warnings.push_back(fmt::format(format, std::forward<Args>(args)...));
  }

  std::string specPath(const std::string& name) const { return fmt::format("{}/{}.json", config_.specDir, name); }

  void readSpecs() {
    for (const SpecFile& file : config_.specs) {
      const std::string path = specPath(file.name);
      if (const std::string problem = deviceNameProblem(file.name); !problem.empty()) {
        warn("{}: the device name '{}' {}; skipped", path, file.name, problem);
        continue;
      }
      Known& state = known_[file.name];
      if (!file.readError.empty()) {
        state.why = fmt::format("{} cannot be read", path);
        warn("{}: cannot be read: {}; skipped", path, file.readError);
        continue;
      }
      try {
        Device device;
        device.spec = parseDeviceSpec(file.text);
        device.enabled = config_.enabled.contains(file.name);
        if (device.spec.boot || device.enabled) {
          state.device = std::move(device);
        } else {
          state.why = fmt::format("{} has no \"boot\": true and {} is not enabled", path, unitOf(file.name));
        }
      } catch (const SpecError& e) {
        state.why = fmt::format("{} is not a valid spec", path);
        warn("{}: {}: {}; skipped", path, e.field().empty() ? "the document" : e.field(), e.reason());
      }
    }
  }

  // Why the mount of this line cannot wait for a ublk device without an ordering cycle, or "".
  std::string cycleOf(const FstabEntry& entry, const std::string& where, const Device& device) const {
    if (isEarlyMountPoint(where)) {
      return fmt::format("systemd needs {} before it starts the bus and ublkd", where);
    }
    if (!device.spec.path.empty() && isUnder(device.spec.path, where)) {
      return fmt::format("it holds the device's own backing store {}", device.spec.path);
    }
    if (!entry.hasOption("_netdev") && !entry.hasOption("nofail") && !entry.hasOption("noauto")) {
      return "without _netdev (or nofail, or noauto) it is a local mount, which local-fs.target waits for, long "
             "before the bus and ublkd start: add _netdev";
    }
    return {};
  }

  void orderMount(const FstabEntry& entry) {
    const std::string at = fmt::format("{}:{}", config_.fstabPath, entry.line);
    if (isNumberedUblkNode(entry.what)) {
      warn(
          "{}: {}: which device gets which number is known only once ublkd has created it; not ordered: name it "
          "{}NAME",
          at, entry.what, kByName);
      return;
    }
    if (!entry.what.starts_with(kByName)) return;
    const std::string name = entry.what.substr(kByName.size());
    const auto found = known_.find(name);
    if (found == known_.end()) {
      warn("{}: {}: there is no {}; not ordered", at, entry.what, specPath(name));
      return;
    }
    if (!found->second.device) {
      warn("{}: {}: {}; not ordered", at, entry.what, found->second.why);
      return;
    }
    Device& device = *found->second.device;
    if (entry.type == "swap") {
      warn("{}: swap on {}: swap.target comes before sysinit.target, before the bus and ublkd start; not ordered", at,
           entry.what);
      return;
    }
    const std::optional<std::string> where = normalizedPath(entry.where);
    if (!where) {
      warn("{}: {}: the mount point '{}' is not an absolute path; not ordered", at, entry.what, entry.where);
      return;
    }
    if (const std::string cycle = cycleOf(entry, *where, device); !cycle.empty()) {
      warn("{}: {} on {} would be an ordering cycle: {}; not ordered", at, entry.what, *where, cycle);
      return;
    }
    const std::string mount = pathUnit(*where, "mount");
    device.mounts.push_back(mount);
    out_.files[fmt::format("{}.d/{}", mount, kDropIn)] =
        fmt::format("# Generated by ublk-generator: {} mounts {}, which {} serves.\n[Unit]\nRequires={}\nAfter={}\n",
                    at, entry.what, unitOf(name), unitOf(name), unitOf(name));
  }

  void writeDevice(const std::string& name, const Device& device) {
    const std::string unit = unitOf(name);
    std::string why = device.spec.boot ? "\"boot\": true" : "enabled";
    if (device.spec.boot && device.enabled) why = "\"boot\": true, and enabled";
    std::string text = fmt::format(
        "# Generated by ublk-generator from {} ({}).\n"
        "[Unit]\n"
        "SourcePath={}\n"
        "# Not systemd's default ordering after basic.target: the device comes after what it names here.\n"
        "# (ublkd.service and dbus.service keep theirs, so at boot it still starts after basic.target.)\n"
        "DefaultDependencies=no\n"
        "Conflicts=shutdown.target\n"
        "Before=shutdown.target\n"
        "After=sysinit.target dbus.socket\n",
        specPath(name), why, specPath(name));
    const std::string& path = device.spec.path;
    if (path.starts_with("/dev/")) {
      if (const auto node = normalizedPath(path)) {
        const std::string backing = pathUnit(*node, "device");
        text += fmt::format("# The backing block device.\nRequires={}\nAfter={}\n", backing, backing);
      }
    } else if (!path.empty()) {
      text += fmt::format("# The file system of the backing file.\nRequiresMountsFor={}\n", path);
    }
    if (!device.mounts.empty()) text += "# The mounts of /etc/fstab that name the device.\n";
    for (const std::string& mount : device.mounts) text += fmt::format("Before={}\n", mount);
    out_.files[fmt::format("{}.d/{}", unit, kDropIn)] = std::move(text);
    if (device.spec.boot) out_.links[fmt::format("multi-user.target.wants/{}", unit)] = config_.templateUnit;
  }

  const BootConfig& config_;
  std::map<std::string, Known> known_;
  BootUnits out_;
};

}  // namespace

BootUnits generateBootUnits(const BootConfig& config) { return Generator(config).run(); }

}  // namespace ublkd::generator
