// readTextFile: a whole file as a string, or an error naming the file and the reason.
// writeTextFileAtomically: a file replaced in one rename, so a reader sees the old contents or the
// new, never a part.
#pragma once

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>

#include <fmt/format.h>

namespace ublkd {

inline std::string readTextFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("cannot read {}: {}", path.string(), std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Writes PATH.new, then renames it over PATH. Throws std::system_error (or filesystem_error)
// naming the file.
inline void writeTextFileAtomically(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path temporary = path.string() + ".new";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw std::system_error(errno, std::generic_category(), fmt::format("write {}", temporary.string()));
  }
  std::filesystem::rename(temporary, path);
}

}  // namespace ublkd
