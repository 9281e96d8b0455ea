// DaemonConfig: /etc/ublk/ublkd.json, the daemon's own settings (device specs live in
// /etc/ublk.d/<name>.json). Keys: "autostart" (bool, default false): bring up every spec in the
// spec directory when the daemon starts; "crash_loop" ({"deaths": N, "within_seconds": M},
// default 10 in 10): this many queue daemon deaths of one device within M seconds end its
// recovery and leave it failed.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace ublkd {

struct DaemonConfig {
  bool autostart = false;
  unsigned crashLoopDeaths = 10;
  unsigned crashLoopWithinSeconds = 10;
};

// A missing file is the defaults. Throws SpecError (field, reason) for anything else wrong.
DaemonConfig loadDaemonConfig(const std::filesystem::path& path);

// The specs in `dir` as (device name, file) pairs, sorted by name: every "<name>.json".
std::vector<std::pair<std::string, std::filesystem::path>> listSpecFiles(const std::filesystem::path& dir);

}  // namespace ublkd
