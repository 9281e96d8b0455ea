// DeviceSpec parsing: JSON text to a validated DeviceSpec.
#include "device_spec.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <span>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace ublkd {
namespace {

using nlohmann::json;

// Indexed by the enum's value, so these tables are also the source of toString().
constexpr std::array<std::string_view, 5> kTargetNames = {"null", "loop", "nbd", "qcow2", "rbd"};

// Every key, and the targets that take it (a bit per TargetKind).
constexpr unsigned bitOf(TargetKind target) { return 1u << static_cast<unsigned>(target); }
constexpr unsigned kEveryTarget = (1u << kTargetNames.size()) - 1;
constexpr unsigned kFiles = bitOf(TargetKind::Loop) | bitOf(TargetKind::Qcow2);
constexpr unsigned kNbd = bitOf(TargetKind::Nbd);
constexpr unsigned kRbd = bitOf(TargetKind::Rbd);
struct Key {
  std::string_view name;
  unsigned targets;
};
constexpr std::array<Key, 25> kKeys = {{
    {"version", kEveryTarget},
    {"target", kEveryTarget},
    {"path", kFiles},
    {"size", kEveryTarget},
    {"queues", kEveryTarget},
    {"depth", kEveryTarget},
    {"block_size", kEveryTarget},
    {"read_only", kEveryTarget},
    {"direct_io", kFiles},
    {"scheduler", kEveryTarget},
    {"recovery", kEveryTarget},
    {"format", bitOf(TargetKind::Qcow2)},
    {"uri", kNbd},
    {"tls_certificates", kNbd},
    {"tls_psk_file", kNbd},
    {"tls_username", kNbd},
    {"tls_verify_peer", kNbd},
    {"reconnect_timeout", kNbd | bitOf(TargetKind::Qcow2)},
    {"pool", kRbd},
    {"image", kRbd},
    {"ceph_conf", kRbd},
    {"client_id", kRbd},
    {"keyring", kRbd},
    {"cluster", kRbd},
    {"boot", kEveryTarget},
}};
constexpr std::array<std::string_view, 4> kNbdSchemes = {"nbd://", "nbds://", "nbd+unix://", "nbds+unix://"};
constexpr std::array<std::string_view, 3> kRecoveryNames = {"none", "reissue", "fail-io"};

std::string describe(std::string_view field, std::string_view reason) {
  return field.empty() ? std::string(reason) : fmt::format("{}: {}", field, reason);
}

std::string pointerTo(const std::string& key) { return (json::json_pointer() / key).to_string(); }

std::string joined(std::span<const std::string_view> names) { return fmt::format("{}", fmt::join(names, ", ")); }

char asciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view text) {
  std::string result(text);
  std::ranges::transform(result, result.begin(), asciiLower);
  return result;
}

// Largest binary suffix that divides the size exactly: 1125899906842624 -> "1P", 1536 -> "1536".
std::string humanSize(uint64_t bytes) {
  static constexpr std::string_view kSuffixes = "KMGTPE";
  if (bytes == 0) return "0";
  int shift = 0;
  while (shift < 60 && bytes % (uint64_t{1} << (shift + 10)) == 0) shift += 10;
  if (shift == 0) return fmt::format("{}", bytes);
  return fmt::format("{}{}", bytes >> shift, kSuffixes[shift / 10 - 1]);
}

// --- JSON value readers: each names the field and the expected type when it throws. ---

std::string describeType(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return fmt::format("a boolean ({})", value.dump());
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return fmt::format("an integer ({})", value.dump());
    case json::value_t::number_float:
      return fmt::format("a floating-point number ({})", value.dump());
    case json::value_t::string:
      return fmt::format("a string ({})", value.dump());
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "an unsupported value";
  }
}

[[noreturn]] void throwWrongType(const json& value, const std::string& field, std::string_view expected) {
  throw SpecError(field, fmt::format("must be {}, not {}", expected, describeType(value)));
}

void requireInteger(const json& value, const std::string& field) {
  if (!value.is_number_integer()) throwWrongType(value, field, "an integer");
}

// The parser stores non-negative integers as unsigned, but a json built in code may hold them signed.
std::optional<uint64_t> nonNegativeInteger(const json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) return static_cast<uint64_t>(value.get<int64_t>());
  return std::nullopt;
}

uint64_t readInRange(const json& value, const std::string& field, uint64_t min, uint64_t max) {
  requireInteger(value, field);
  const auto number = nonNegativeInteger(value);
  if (!number || *number < min || *number > max) {
    throw SpecError(field, fmt::format("must be between {} and {} (got {})", min, max, value.dump()));
  }
  return *number;
}

bool readBool(const json& value, const std::string& field) {
  if (!value.is_boolean()) throwWrongType(value, field, "a boolean");
  return value.get<bool>();
}

const std::string& readString(const json& value, const std::string& field) {
  if (!value.is_string()) throwWrongType(value, field, "a string");
  return value.get_ref<const std::string&>();
}

size_t readChoice(const json& value, const std::string& field, std::span<const std::string_view> choices) {
  const std::string& text = readString(value, field);
  const auto found = std::ranges::find(choices, text);
  if (found == choices.end()) {
    throw SpecError(field, fmt::format("must be one of {} (got {})", joined(choices), value.dump()));
  }
  return static_cast<size_t>(found - choices.begin());
}

// --- Size strings ---

[[noreturn]] void throwNotASize(const json& value, const std::string& field) {
  throw SpecError(field,
                  fmt::format("must be a byte count or a size like 4096, 512K, 10M, 10G or 1T (got {})", value.dump()));
}

[[noreturn]] void throwSizeOverflow(const json& value, const std::string& field) {
  throw SpecError(field, fmt::format("is too large: does not fit in 64 bits (got {})", value.dump()));
}

// The multiplier a size suffix stands for: "" or "B" -> 1, "K"/"KB"/"KiB" -> 2^10, ... "P" -> 2^50.
std::optional<uint64_t> suffixMultiplier(std::string_view suffix) {
  static constexpr std::string_view kMultipliers = "kmgtp";
  const std::string lower = lowered(suffix);
  if (lower.empty() || lower == "b") return 1;
  const size_t index = kMultipliers.find(lower.front());
  if (index == std::string_view::npos) return std::nullopt;
  const std::string_view unit = std::string_view(lower).substr(1);
  if (!unit.empty() && unit != "b" && unit != "ib") return std::nullopt;
  return uint64_t{1} << (10 * (index + 1));
}

uint64_t parseSizeString(const json& value, const std::string& field) {
  const std::string& text = value.get_ref<const std::string&>();
  const char* const end = text.data() + text.size();
  uint64_t count = 0;
  // from_chars takes no sign, no whitespace and no "0x" for an unsigned type: exactly the digits we allow.
  const auto [digitsEnd, error] = std::from_chars(text.data(), end, count);
  if (error == std::errc::invalid_argument) throwNotASize(value, field);
  const auto multiplier = suffixMultiplier(std::string_view(digitsEnd, static_cast<size_t>(end - digitsEnd)));
  if (!multiplier) throwNotASize(value, field);
  uint64_t bytes = 0;
  if (error == std::errc::result_out_of_range || __builtin_mul_overflow(count, *multiplier, &bytes)) {
    throwSizeOverflow(value, field);
  }
  return bytes;
}

// --- The document ---

// "[json.exception.parse_error.101] parse error at ..." -> "parse error at ...": the id means nothing to a user.
std::string_view withoutExceptionId(std::string_view message) {
  const size_t idEnd = message.starts_with('[') ? message.find("] ") : std::string_view::npos;
  return idEnd == std::string_view::npos ? message : message.substr(idEnd + 2);
}

// The parser keeps the last of two equal keys; a spec that says two things about one field is
// rejected instead, since either reading could be the wrong one.
json parseObject(std::string_view text) {
  std::set<std::string> seen;
  std::optional<std::string> duplicate;
  const auto noteTopLevelKey = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && !seen.insert(parsed.get<std::string>()).second) {
      duplicate = duplicate.value_or(parsed.get<std::string>());
    }
    return true;
  };
  json doc;
  try {
    doc = json::parse(text.begin(), text.end(), noteTopLevelKey);
  } catch (const json::parse_error& e) {
    throw SpecError("", fmt::format("invalid JSON at byte {}: {}", e.byte, withoutExceptionId(e.what())));
  } catch (const json::exception& e) {
    throw SpecError("", fmt::format("invalid JSON: {}", withoutExceptionId(e.what())));
  }
  if (!doc.is_object()) throw SpecError("", "a device spec must be a JSON object");
  if (duplicate) throw SpecError(pointerTo(*duplicate), "duplicate key");
  return doc;
}

const Key* findKey(std::string_view name) {
  const auto found = std::ranges::find(kKeys, name, &Key::name);
  return found == kKeys.end() ? nullptr : &*found;
}

void rejectUnknownKeys(const json& doc) {
  for (const auto& [key, value] : doc.items()) {
    if (findKey(key) == nullptr) {
      std::vector<std::string_view> known;
      for (const Key& k : kKeys) known.push_back(k.name);
      throw SpecError(pointerTo(key), fmt::format("unknown key (known: {})", joined(known)));
    }
  }
}

// A key of another target: a spec that says it wants something this target cannot do.
void rejectForeignKeys(const json& doc, TargetKind target) {
  for (const auto& [key, value] : doc.items()) {
    const unsigned targets = findKey(key)->targets;
    if ((targets & bitOf(target)) != 0) continue;
    std::vector<std::string_view> takers;
    for (size_t t = 0; t < kTargetNames.size(); ++t) {
      if ((targets & (1u << t)) != 0) takers.push_back(kTargetNames[t]);
    }
    throw SpecError(pointerTo(key), fmt::format("the {} target takes no {} (only {} {})", toString(target), key,
                                                fmt::join(takers, " and "), takers.size() == 1 ? "does" : "do"));
  }
}

const json* member(const json& doc, const char* key) {
  const auto found = doc.find(key);
  return found == doc.end() ? nullptr : &*found;
}

void checkVersion(const json& doc) {
  const json* version = member(doc, "version");
  if (!version) return;
  requireInteger(*version, "/version");
  if (*version != kSpecVersion) {
    throw SpecError("/version",
                    fmt::format("must be {}, the only spec version (got {})", kSpecVersion, version->dump()));
  }
}

TargetKind readTarget(const json& doc) {
  const json* target = member(doc, "target");
  if (!target) throw SpecError("/target", fmt::format("is required (one of {})", joined(kTargetNames)));
  return static_cast<TargetKind>(readChoice(*target, "/target", kTargetNames));
}

// A string handed to C code: a "\u0000" escape would silently cut it short there.
const std::string& readCString(const json& value, const std::string& field) {
  const std::string& text = readString(value, field);
  if (text.find('\0') != std::string::npos) throw SpecError(field, "must not contain a NUL character");
  return text;
}

std::string readAbsolutePath(const json& value, const std::string& field) {
  const std::string& text = readCString(value, field);
  if (!text.starts_with('/')) throw SpecError(field, fmt::format("must be an absolute path (got {})", value.dump()));
  return text;
}

std::string readPath(const json& doc, TargetKind target) {
  const json* path = member(doc, "path");
  if ((bitOf(target) & kFiles) == 0) return {};
  if (!path) throw SpecError("/path", fmt::format("is required for the {} target", toString(target)));
  return readAbsolutePath(*path, "/path");
}

// An optional string key; `read` checks and converts it.
template <typename Read>
void readOptional(const json& doc, const char* key, std::string& into, Read read) {
  if (const json* value = member(doc, key)) into = read(*value, pointerTo(key));
}

NbdSpec readNbd(const json& doc) {
  NbdSpec nbd;
  const json* uri = member(doc, "uri");
  if (!uri) throw SpecError("/uri", "is required for the nbd target");
  nbd.uri = readCString(*uri, "/uri");
  const auto scheme = std::ranges::find_if(kNbdSchemes, [&](std::string_view s) { return nbd.uri.starts_with(s); });
  if (scheme == kNbdSchemes.end()) {
    throw SpecError("/uri", fmt::format("must be an NBD URI starting {} (got {})", joined(kNbdSchemes), uri->dump()));
  }
  readOptional(doc, "tls_certificates", nbd.tlsCertificates, readAbsolutePath);
  readOptional(doc, "tls_psk_file", nbd.tlsPskFile, readAbsolutePath);
  readOptional(doc, "tls_username", nbd.tlsUsername, readCString);
  if (const json* verify = member(doc, "tls_verify_peer")) nbd.tlsVerifyPeer = readBool(*verify, "/tls_verify_peer");
  if (!scheme->starts_with("nbds")) {
    for (const char* key : {"tls_certificates", "tls_psk_file", "tls_username", "tls_verify_peer"}) {
      if (member(doc, key)) throw SpecError(pointerTo(key), "needs TLS: an nbds:// or nbds+unix:// uri");
    }
  }
  return nbd;
}

// A pool or image name as rbd spells it: not empty, and without the separators of pool/image@snap.
std::string readRbdName(const json& value, const std::string& field) {
  const std::string& text = readCString(value, field);
  if (text.empty()) throw SpecError(field, "must not be empty");
  if (text.find_first_of("/@") != std::string::npos) {
    throw SpecError(field, fmt::format("must not contain '/' or '@' (got {})", value.dump()));
  }
  return text;
}

RbdSpec readRbd(const json& doc) {
  RbdSpec rbd;
  if (!member(doc, "image")) throw SpecError("/image", "is required for the rbd target");
  readOptional(doc, "image", rbd.image, readRbdName);
  readOptional(doc, "pool", rbd.pool, readRbdName);
  readOptional(doc, "ceph_conf", rbd.cephConf, readAbsolutePath);
  readOptional(doc, "keyring", rbd.keyring, readAbsolutePath);
  readOptional(doc, "client_id", rbd.clientId, readRbdName);
  readOptional(doc, "cluster", rbd.cluster, readRbdName);
  return rbd;
}

std::optional<uint32_t> readBlockSize(const json& doc) {
  const json* blockSize = member(doc, "block_size");
  if (!blockSize) return std::nullopt;
  requireInteger(*blockSize, "/block_size");
  for (const uint32_t allowed : kBlockSizes) {
    if (*blockSize == allowed) return allowed;
  }
  throw SpecError("/block_size",
                  fmt::format("must be one of {} (got {})", fmt::join(kBlockSizes, ", "), blockSize->dump()));
}

std::optional<uint64_t> readSize(const json& doc, TargetKind target, uint32_t blockSize) {
  const json* size = member(doc, "size");
  if (!size) {
    if (target == TargetKind::Null) throw SpecError("/size", "is required for the null target");
    return std::nullopt;
  }
  const uint64_t bytes = parseSize(*size, "/size");
  if (bytes == 0) throw SpecError("/size", "must be greater than 0");
  if (bytes > kMaxSize) {
    throw SpecError("/size", fmt::format("must be at most {} ({} bytes)", humanSize(kMaxSize), kMaxSize));
  }
  if (bytes % blockSize != 0) {
    throw SpecError("/size", fmt::format("must be a multiple of the logical block size ({} bytes); {} bytes is not",
                                         blockSize, bytes));
  }
  return bytes;
}

}  // namespace

SpecError::SpecError(std::string field, std::string reason)
    : std::runtime_error(describe(field, reason)), field_(std::move(field)), reason_(std::move(reason)) {}

const std::string& SpecError::field() const { return field_; }
const std::string& SpecError::reason() const { return reason_; }

DeviceSpec parseDeviceSpec(std::string_view text) {
  const json doc = parseObject(text);
  rejectUnknownKeys(doc);
  checkVersion(doc);
  DeviceSpec spec;
  spec.target = readTarget(doc);
  rejectForeignKeys(doc, spec.target);
  spec.path = readPath(doc, spec.target);
  if (spec.target == TargetKind::Nbd) spec.nbd = readNbd(doc);
  if (spec.target == TargetKind::Rbd) spec.rbd = readRbd(doc);
  if (const json* format = member(doc, "format"))
    spec.format = kImageFormats[readChoice(*format, "/format", kImageFormats)];
  if (const json* timeout = member(doc, "reconnect_timeout")) {
    spec.reconnectTimeout = static_cast<uint32_t>(readInRange(*timeout, "/reconnect_timeout", 0, kMaxReconnectTimeout));
  }
  spec.blockSize = readBlockSize(doc);
  spec.size = readSize(doc, spec.target, spec.blockSize.value_or(kDefaultBlockSize));
  if (const json* queues = member(doc, "queues")) {
    spec.queues = static_cast<uint16_t>(readInRange(*queues, "/queues", kMinQueues, kMaxQueues));
  }
  if (const json* depth = member(doc, "depth")) {
    spec.depth = static_cast<uint16_t>(readInRange(*depth, "/depth", kMinDepth, kMaxDepth));
  }
  if (const json* readOnly = member(doc, "read_only")) spec.readOnly = readBool(*readOnly, "/read_only");
  if (const json* directIo = member(doc, "direct_io")) spec.directIo = readBool(*directIo, "/direct_io");
  if (const json* scheduler = member(doc, "scheduler")) {
    spec.scheduler = kSchedulers[readChoice(*scheduler, "/scheduler", kSchedulers)];
  }
  if (const json* recovery = member(doc, "recovery")) {
    spec.recovery = static_cast<Recovery>(readChoice(*recovery, "/recovery", kRecoveryNames));
  }
  if (const json* boot = member(doc, "boot")) spec.boot = readBool(*boot, "/boot");
  return spec;
}

uint64_t parseSize(const json& value, const std::string& field) {
  if (const auto bytes = nonNegativeInteger(value)) return *bytes;
  if (value.is_string()) return parseSizeString(value, field);
  if (value.is_number_integer()) throw SpecError(field, fmt::format("must not be negative (got {})", value.dump()));
  // Integers beyond 64 bits reach us as floating-point numbers.
  if (value.is_number_float() && value.get<double>() >= 0x1p64) throwSizeOverflow(value, field);
  throwNotASize(value, field);
}

std::string deviceNameProblem(std::string_view name) {
  if (name.empty() || name.size() > 64) return "must be 1 to 64 characters";
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front())) return "must start with a letter or digit";
  for (const char c : name) {
    if (!alnum(c) && c != '_' && c != '.' && c != '-') return "may contain only letters, digits, '_', '.' and '-'";
  }
  return {};
}

std::string_view toString(TargetKind target) { return kTargetNames.at(static_cast<size_t>(target)); }
std::string_view toString(Recovery recovery) { return kRecoveryNames.at(static_cast<size_t>(recovery)); }

}  // namespace ublkd
