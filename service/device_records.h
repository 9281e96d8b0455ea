// DeviceRecords: what ublkd keeps of each device in its run directory (/run/ublkd), so that the
// next ublkd (after a restart or a crash) finds the devices this one served:
//   devices/NAME.spec.json   the spec as the caller gave it; `ublkd serve --spec` reads it
//   devices/NAME.state.json  the record: id, cookie, state, queue daemon, backing identity, ...
//   devices/NAME.stats       the queue daemon's statistics (stats_layout.h), written in place
//   udev/ublkbID             UBLK_NAME=NAME, which udev imports for /dev/ublk/by-name/NAME
// Every write is atomic (a rename), so a crash leaves the old file or the new one.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "backing_store.h"

namespace ublkd {

// One device's record. Fields an older ublkd did not write read back as their defaults.
struct DeviceRecord {
  std::string name;
  std::string state;    // stateName(): "starting", "live", "recovering", "failed", ...
  uint64_t cookie = 0;  // 0 in records from before cookies
  uint32_t id = UINT32_MAX;
  pid_t pid = 0;  // the queue daemon, 0 if none
  std::string spec;
  uint32_t restarts = 0;
  std::optional<uint64_t> sizeBytes;  // as the kernel granted it
  std::string lastExitReason;
  std::string reason;  // why a failed device failed
  uid_t owner = 0;     // who created the device
  // A loop device's backing store: the path as opened, and which file that was.
  std::string backingPath;
  std::optional<FileIdentity> backing;

  std::string toJson() const;
  // Throws (nlohmann::json's exceptions) on a malformed record.
  static DeviceRecord fromJson(const std::string& text);
};

class DeviceRecords {
 public:
  // Creates the directories. Throws std::filesystem::filesystem_error.
  explicit DeviceRecords(std::filesystem::path runDir);

  std::filesystem::path specPath(const std::string& name) const;
  std::filesystem::path statsPath(const std::string& name) const;
  // Throw std::system_error (or filesystem_error) naming the file.
  void writeSpec(const std::string& name, const std::string& specJson) const;
  void write(const DeviceRecord& record) const;
  // The udev file for /dev/ublk/by-name/NAME, then a change uevent so udev reads it now (the add
  // event came before the name was known). Throws std::runtime_error.
  void announceName(uint32_t id, const std::string& name) const;
  // Spec, record, statistics and (with an id) the udev file; what is missing already is no error.
  void remove(const std::string& name, uint32_t id) const;

  // The record files left in the run directory.
  std::vector<std::filesystem::path> recordFiles() const;

 private:
  std::filesystem::path recordPath(const std::string& name) const;
  std::filesystem::path udevPath(uint32_t id) const;

  std::filesystem::path runDir_;
};

}  // namespace ublkd
