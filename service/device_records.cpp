// DeviceRecords: the run directory's files, written by rename and read back as DeviceRecord.
#include "device_records.h"

#include <cerrno>
#include <fstream>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "text_file.h"

namespace ublkd {

namespace fs = std::filesystem;

std::string DeviceRecord::toJson() const {
  nlohmann::json json{{"name", name}, {"state", state}, {"cookie", cookie},     {"id", id},
                      {"pid", pid},   {"spec", spec},   {"restarts", restarts}, {"last_exit_reason", lastExitReason}};
  if (sizeBytes) json["size_bytes"] = *sizeBytes;
  if (!reason.empty()) json["reason"] = reason;
  if (owner != 0) json["owner"] = owner;
  if (backing) {
    json["backing"] = {{"path", backingPath}, {"device", backing->device}, {"inode", backing->inode}};
  }
  return json.dump() + "\n";
}

DeviceRecord DeviceRecord::fromJson(const std::string& text) {
  const nlohmann::json json = nlohmann::json::parse(text);
  DeviceRecord record;
  record.name = json.at("name").get<std::string>();
  record.state = json.value("state", std::string());
  record.cookie = json.value("cookie", uint64_t{0});
  record.id = json.value("id", UINT32_MAX);
  record.pid = json.value("pid", pid_t{0});
  record.spec = json.at("spec").get<std::string>();
  record.restarts = json.value("restarts", 0U);
  if (json.contains("size_bytes")) record.sizeBytes = json.at("size_bytes").get<uint64_t>();
  record.lastExitReason = json.value("last_exit_reason", std::string());
  record.reason = json.value("reason", std::string());
  record.owner = json.value("owner", uid_t{0});
  if (const auto backing = json.find("backing"); backing != json.end()) {
    record.backingPath = backing->at("path").get<std::string>();
    record.backing =
        FileIdentity{.device = backing->at("device").get<uint64_t>(), .inode = backing->at("inode").get<uint64_t>()};
  }
  return record;
}

DeviceRecords::DeviceRecords(fs::path runDir) : runDir_(std::move(runDir)) {
  fs::create_directories(runDir_ / "devices");
  fs::create_directories(runDir_ / "udev");
}

fs::path DeviceRecords::specPath(const std::string& name) const { return runDir_ / "devices" / (name + ".spec.json"); }
fs::path DeviceRecords::statsPath(const std::string& name) const { return runDir_ / "devices" / (name + ".stats"); }
fs::path DeviceRecords::recordPath(const std::string& name) const {
  return runDir_ / "devices" / (name + ".state.json");
}
fs::path DeviceRecords::udevPath(uint32_t id) const { return runDir_ / "udev" / fmt::format("ublkb{}", id); }

void DeviceRecords::writeSpec(const std::string& name, const std::string& specJson) const {
  writeTextFileAtomically(specPath(name), specJson);
}

void DeviceRecords::write(const DeviceRecord& record) const {
  writeTextFileAtomically(recordPath(record.name), record.toJson());
}

void DeviceRecords::announceName(uint32_t id, const std::string& name) const {
  writeTextFileAtomically(udevPath(id), fmt::format("UBLK_NAME={}\n", name));
  std::ofstream uevent(fmt::format("/sys/block/ublkb{}/uevent", id));
  uevent << "change" << std::flush;
  if (!uevent) throw std::runtime_error("cannot write change to its uevent file");
}

void DeviceRecords::remove(const std::string& name, uint32_t id) const {
  std::error_code ignored;
  fs::remove(specPath(name), ignored);
  fs::remove(recordPath(name), ignored);
  fs::remove(statsPath(name), ignored);
  if (id != UINT32_MAX) fs::remove(udevPath(id), ignored);
}

std::vector<fs::path> DeviceRecords::recordFiles() const {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(runDir_ / "devices")) {
    if (entry.path().filename().string().ends_with(".state.json")) files.push_back(entry.path());
  }
  return files;
}

}  // namespace ublkd
