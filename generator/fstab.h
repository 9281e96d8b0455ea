// FstabEntry: one mount line of /etc/fstab (fstab(5)), as ublk-generator reads it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ublkd::generator {

struct FstabEntry {
  int line = 0;       // 1-based line number in the file, for messages
  std::string what;   // the device (first field), octal escapes such as \040 decoded
  std::string where;  // the mount point, or "none"/"swap" for swap, decoded
  std::string type = "auto";
  std::vector<std::string> options;  // the fourth field split at ',' ("defaults" when absent)

  // Whether the options hold `name` itself ("_netdev"), or `name=...` when name ends in '='.
  bool hasOption(std::string_view name) const;
};

// The entries of an fstab text: blank and comment lines are skipped, and so are lines with fewer
// than two fields (systemd-fstab-generator reports those itself). Never throws on content.
std::vector<FstabEntry> parseFstab(std::string_view text);

}  // namespace ublkd::generator
