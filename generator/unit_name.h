// Unit names for paths, as systemd forms them (systemd.unit(5), "String Escaping for Inclusion in
// Unit Names"; `systemd-escape --path`): the mount unit of a mount point, the device unit of a node.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ublkd::generator {

// An absolute path without repeated or trailing '/' and without "." components ("/mnt//a/./b/" ->
// "/mnt/a/b"); nullopt for a relative path or one with a ".." component, which name no unit.
std::optional<std::string> normalizedPath(std::string_view path);

// The escaped form of a normalized path: "/" -> "-", "/mnt/my-data" -> "mnt-my\x2ddata".
std::string escapePath(std::string_view normalized);

// The unit of a normalized path with its type: pathUnit("/mnt/data", "mount") -> "mnt-data.mount".
std::string pathUnit(std::string_view normalized, std::string_view type);

// Whether `path` is `prefix` or lies below it (both normalized): "/srv/a" is under "/srv" and "/".
bool isUnder(std::string_view path, std::string_view prefix);

}  // namespace ublkd::generator
