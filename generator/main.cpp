// ublk-generator: the systemd generator (systemd.generator(7)) for ublk devices started at boot.
// Reads /etc/ublk.d/*.json, the ublk@ units enabled in /etc/systemd/system and /etc/fstab, and
// writes what generateBootUnits (boot_units.h) decides into the directory systemd names first:
//   ublk-generator NORMAL_DIR [EARLY_DIR LATE_DIR]
// A spec or line it cannot use is logged (to the kernel log when systemd runs it) and skipped; it
// fails only when it cannot write its output.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

#include <fmt/format.h>

#include "boot_units.h"

#ifndef UBLKD_SYSTEMD_UNIT_DIR
#define UBLKD_SYSTEMD_UNIT_DIR "/lib/systemd/system"
#endif

namespace {

namespace fs = std::filesystem;
using ublkd::generator::BootConfig;
using ublkd::generator::BootUnits;

// Where messages go: the kernel log when systemd runs us (there is no syslog yet), stderr otherwise.
class Log {
 public:
  Log() {
    if (std::getenv("SYSTEMD_SCOPE") != nullptr) kmsg_ = ::open("/dev/kmsg", O_WRONLY | O_CLOEXEC | O_NOCTTY);
  }
  ~Log() {
    if (kmsg_ >= 0) ::close(kmsg_);
  }
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // level: the syslog priority, 3 error, 4 warning.
  void write(int level, const std::string& message) const {
    const std::string line = fmt::format("ublk-generator: {}\n", message);
    if (kmsg_ >= 0) {
      const std::string record = fmt::format("<{}>{}", level, line);
      if (::write(kmsg_, record.data(), record.size()) == static_cast<ssize_t>(record.size())) return;
    }
    std::fputs(line.c_str(), stderr);
  }

 private:
  int kmsg_ = -1;
};

std::string readText(const fs::path& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) error = std::strerror(errno != 0 ? errno : EIO);
  return text.str();
}

void readSpecs(const fs::path& dir, BootConfig& config) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const fs::path& path = entry.path();
    if (path.extension() != ".json" || !entry.is_regular_file(ec)) continue;
    errno = 0;
    ublkd::generator::SpecFile file;
    file.name = path.stem().string();
    file.text = readText(path, file.readError);
    config.specs.push_back(std::move(file));
  }
}

// ublk@NAME.service links in /etc/systemd/system/*.wants/ and *.requires/: what `systemctl enable` made.
void readEnabled(const fs::path& dir, BootConfig& config) {
  std::error_code ec;
  for (const auto& wants : fs::directory_iterator(dir, ec)) {
    const std::string folder = wants.path().filename().string();
    if (!folder.ends_with(".wants") && !folder.ends_with(".requires")) continue;
    std::error_code inner;
    for (const auto& link : fs::directory_iterator(wants.path(), inner)) {
      const std::string unit = link.path().filename().string();
      constexpr std::string_view kPrefix = "ublk@", kSuffix = ".service";
      if (unit.size() > kPrefix.size() + kSuffix.size() && unit.starts_with(kPrefix) && unit.ends_with(kSuffix)) {
        config.enabled.insert(unit.substr(kPrefix.size(), unit.size() - kPrefix.size() - kSuffix.size()));
      }
    }
  }
}

void writeUnits(const fs::path& out, const BootUnits& units) {
  for (const auto& [relative, text] : units.files) {
    const fs::path path = out / relative;
    fs::create_directories(path.parent_path());
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file << text;
    file.close();
    if (!file) throw std::system_error(errno, std::generic_category(), fmt::format("cannot write {}", path.string()));
  }
  for (const auto& [relative, target] : units.links) {
    const fs::path path = out / relative;
    fs::create_directories(path.parent_path());
    fs::remove(path);
    fs::create_symlink(target, path);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Log log;
  if (argc != 2 && argc != 4) {
    log.write(3, "usage: ublk-generator NORMAL_DIR [EARLY_DIR LATE_DIR]");
    return 2;
  }
  try {
    BootConfig config;
    config.templateUnit = UBLKD_SYSTEMD_UNIT_DIR "/ublk@.service";
    readSpecs(config.specDir, config);
    readEnabled("/etc/systemd/system", config);
    std::string fstabError;
    if (fs::exists(config.fstabPath)) config.fstab = readText(config.fstabPath, fstabError);
    if (!fstabError.empty()) log.write(4, fmt::format("{}: cannot be read: {}", config.fstabPath, fstabError));
    const BootUnits units = ublkd::generator::generateBootUnits(config);
    for (const std::string& warning : units.warnings) log.write(4, warning);
    writeUnits(argv[1], units);
  } catch (const std::exception& e) {
    log.write(3, e.what());
    return 1;
  }
  return 0;
}
