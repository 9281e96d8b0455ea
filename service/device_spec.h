// DeviceSpec: the JSON description of one ublk device, its parsing, validation and defaults.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace ublkd {

enum class TargetKind { Null, Loop, Nbd, Qcow2, Rbd };
enum class Recovery { None, Reissue, FailIo };

// Defaults and limits, declared once so that help texts and the schema test can quote them.
inline constexpr int kSpecVersion = 1;
inline constexpr uint16_t kMinQueues = 1;
inline constexpr uint16_t kMaxQueues = 64;
inline constexpr uint16_t kDefaultQueues = 1;
inline constexpr uint16_t kMinDepth = 1;
inline constexpr uint16_t kMaxDepth = 4096;
inline constexpr uint16_t kDefaultDepth = 128;
inline constexpr std::array<uint32_t, 4> kBlockSizes = {512, 1024, 2048, 4096};
inline constexpr uint32_t kDefaultBlockSize = 512;  // for the null target and for size checks
inline constexpr uint64_t kMaxSize = uint64_t{1} << 50;
inline constexpr std::array<std::string_view, 4> kSchedulers = {"none", "mq-deadline", "kyber", "bfq"};
inline constexpr std::string_view kDefaultScheduler = "none";
inline constexpr Recovery kDefaultRecovery = Recovery::Reissue;
// How long I/O waits for a lost NBD server (or a restarted qemu-storage-daemon) before it fails.
inline constexpr uint32_t kDefaultReconnectTimeout = 30;
inline constexpr uint32_t kMaxReconnectTimeout = 86400;
// The image formats of the qcow2 target: QEMU's block drivers that are plain image files.
inline constexpr std::array<std::string_view, 7> kImageFormats = {"qcow2", "raw", "vmdk", "vhdx", "vdi", "vpc", "qed"};

// The nbd target's export and how to reach it: libnbd's URI and TLS settings ("" = libnbd's default).
struct NbdSpec {
  std::string uri;              // nbd://, nbds://, nbd+unix:// or nbds+unix://
  std::string tlsCertificates;  // directory of X.509 files
  std::string tlsPskFile;
  std::string tlsUsername;
  bool tlsVerifyPeer = true;
};

// The rbd target's image and the cluster's client settings ("" = librados's default).
struct RbdSpec {
  std::string pool = "rbd";
  std::string image;
  std::string cephConf;  // ceph.conf path
  std::string clientId;  // "admin" for client.admin
  std::string keyring;
  std::string cluster;  // cluster name ("ceph")
};

struct DeviceSpec {
  TargetKind target = TargetKind::Null;
  std::string path;              // loop: backing file or block device; qcow2: the image
  std::optional<uint64_t> size;  // bytes; required for null; elsewhere it defaults to the backing's size
  uint16_t queues = kDefaultQueues;
  uint16_t depth = kDefaultDepth;
  std::optional<uint32_t> blockSize;  // logical block size in bytes; unset = 512 for null, backing's for loop
  bool readOnly = false;
  std::optional<bool> directIo;  // unset = decide from the backing store
  std::string scheduler{kDefaultScheduler};
  Recovery recovery = kDefaultRecovery;
  std::string format{kImageFormats[0]};  // qcow2 target
  NbdSpec nbd;
  RbdSpec rbd;
  uint32_t reconnectTimeout = kDefaultReconnectTimeout;  // seconds; nbd and qcow2
  bool boot = false;  // start at boot (ublk-generator: generator/); ublkd itself does nothing with it
};

// A rejected spec: `field` is the JSON path of the offending field ("/queues", "/size", or "" for
// the document itself), `reason` says why in plain words. what() is "<field>: <reason>" (or just
// reason when field is empty).
class SpecError : public std::runtime_error {
 public:
  SpecError(std::string field, std::string reason);
  const std::string& field() const;
  const std::string& reason() const;

 private:
  std::string field_;
  std::string reason_;
};

// Parses and validates a spec from JSON text. Throws SpecError on invalid JSON (field "", reason
// includes the parser's byte position), unknown or duplicate keys, wrong types, out-of-range values,
// or a missing/unknown required field. Does not touch the filesystem.
DeviceSpec parseDeviceSpec(std::string_view json);

// Parses a size: a JSON unsigned integer (bytes) or a string like "4096", "512K", "10M", "10G",
// "1T" (binary multiples: K=1024, M, G, T, P; an optional trailing "iB" or "B" is accepted:
// "10GiB", "10GB" are both 10*2^30; whitespace not allowed; case-insensitive suffix). Throws
// SpecError(field, reason) on anything else, including overflow of uint64.
uint64_t parseSize(const nlohmann::json& value, const std::string& field);

// Why `name` cannot name a device, or "" when it can: 1 to 64 characters, letters, digits, '_', '.'
// and '-', starting with a letter or a digit (so it is also a unit instance and a file name as it is).
std::string deviceNameProblem(std::string_view name);

std::string_view toString(TargetKind);
std::string_view toString(Recovery);

}  // namespace ublkd
