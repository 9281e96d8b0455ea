// DaemonConfig: parsing of /etc/ublk/ublkd.json and listing of /etc/ublk.d.
#include "daemon_config.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "device_spec.h"
#include "text_file.h"

namespace ublkd {

DaemonConfig loadDaemonConfig(const std::filesystem::path& path) {
  DaemonConfig config;
  if (!std::filesystem::exists(path)) return config;
  std::string text;
  try {
    text = readTextFile(path);
  } catch (const std::runtime_error& e) {
    throw SpecError("", e.what());
  }
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw SpecError("", fmt::format("invalid JSON at byte {}", e.byte));
  }
  if (!doc.is_object()) throw SpecError("", "must be a JSON object");
  for (const auto& [key, value] : doc.items()) {
    if (key == "autostart") {
      if (!value.is_boolean()) throw SpecError("/autostart", "must be true or false");
      config.autostart = value.get<bool>();
    } else if (key == "crash_loop") {
      if (!value.is_object())
        throw SpecError("/crash_loop", "must be an object {\"deaths\": N, \"within_seconds\": M}");
      for (const auto& [field, number] : value.items()) {
        const std::string where = "/crash_loop/" + field;
        if (field != "deaths" && field != "within_seconds") {
          throw SpecError(where, "unknown key (known: deaths, within_seconds)");
        }
        if (!number.is_number_unsigned() || number.get<uint64_t>() < 1 || number.get<uint64_t>() > 3600) {
          throw SpecError(where, "must be a whole number from 1 to 3600");
        }
        (field == "deaths" ? config.crashLoopDeaths : config.crashLoopWithinSeconds) = number.get<unsigned>();
      }
    } else {
      throw SpecError("/" + key, "unknown key (known: autostart, crash_loop)");
    }
  }
  return config;
}

std::vector<std::pair<std::string, std::filesystem::path>> listSpecFiles(const std::filesystem::path& dir) {
  std::vector<std::pair<std::string, std::filesystem::path>> specs;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".json") specs.emplace_back(entry.path().stem().string(), entry.path());
  }
  std::sort(specs.begin(), specs.end());
  return specs;
}

}  // namespace ublkd
