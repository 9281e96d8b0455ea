// Parsing, validation and backing-store checks of device specs, and the checked-in schema and examples.
#include "device_spec.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Property;
using ublkd::DeviceSpec;
using ublkd::parseDeviceSpec;
using ublkd::parseSize;
using ublkd::Recovery;
using ublkd::SpecError;
using ublkd::TargetKind;
using json = nlohmann::json;

const std::filesystem::path kSourceDir = UBLKD_SOURCE_DIR;

// The error parseDeviceSpec throws for the text; a test failure if it accepts it.
SpecError rejectionOf(std::string_view text) {
  try {
    parseDeviceSpec(text);
  } catch (const SpecError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << text;
  return SpecError("<accepted>", "<accepted>");
}

SpecError sizeRejectionOf(const json& value, const std::string& field = "/size") {
  try {
    parseSize(value, field);
  } catch (const SpecError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted size: " << value.dump();
  return SpecError("<accepted>", "<accepted>");
}

auto Rejects(const std::string& field, const std::string& reasonPart) {
  return AllOf(Property("field", &SpecError::field, field),
               Property("reason", &SpecError::reason, HasSubstr(reasonPart)));
}

// A valid null spec with extra members, e.g. nullSpec(R"("queues": 4)").
std::string nullSpec(std::string_view extra = "") {
  return fmt::format(R"({{"target": "null", "size": 4096{}{}}})", extra.empty() ? "" : ", ", extra);
}

std::string loopSpec(std::string_view extra = "") {
  return fmt::format(R"({{"target": "loop", "path": "/var/lib/ublk/disk0.img"{}{}}})", extra.empty() ? "" : ", ",
                     extra);
}

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// --- SpecError and names ---

TEST(SpecError, WhatJoinsFieldAndReason) {
  const SpecError error("/queues", "must be between 1 and 64");
  EXPECT_EQ(error.field(), "/queues");
  EXPECT_EQ(error.reason(), "must be between 1 and 64");
  EXPECT_STREQ(error.what(), "/queues: must be between 1 and 64");
}

TEST(SpecError, WhatIsJustTheReasonForTheDocument) {
  EXPECT_STREQ(SpecError("", "a device spec must be a JSON object").what(), "a device spec must be a JSON object");
}

TEST(DeviceSpecNames, SpellTheJsonValues) {
  EXPECT_EQ(ublkd::toString(TargetKind::Null), "null");
  EXPECT_EQ(ublkd::toString(TargetKind::Loop), "loop");
  EXPECT_EQ(ublkd::toString(Recovery::None), "none");
  EXPECT_EQ(ublkd::toString(Recovery::Reissue), "reissue");
  EXPECT_EQ(ublkd::toString(Recovery::FailIo), "fail-io");
}

// --- Accepted specs ---

TEST(ParseDeviceSpec, MinimalNullSpecGetsTheDefaults) {
  const DeviceSpec spec = parseDeviceSpec(R"({"target": "null", "size": 4096})");
  EXPECT_EQ(spec.target, TargetKind::Null);
  EXPECT_EQ(spec.path, "");
  EXPECT_EQ(spec.size, 4096u);
  EXPECT_EQ(spec.queues, ublkd::kDefaultQueues);
  EXPECT_EQ(spec.depth, ublkd::kDefaultDepth);
  EXPECT_EQ(spec.blockSize, std::nullopt);
  EXPECT_FALSE(spec.readOnly);
  EXPECT_EQ(spec.directIo, std::nullopt);
  EXPECT_EQ(spec.scheduler, ublkd::kDefaultScheduler);
  EXPECT_EQ(spec.recovery, ublkd::kDefaultRecovery);
}

TEST(ParseDeviceSpec, DefaultsAreTheDeclaredConstants) {
  const DeviceSpec spec;
  EXPECT_EQ(spec.queues, 1);
  EXPECT_EQ(spec.depth, 128);
  EXPECT_EQ(spec.scheduler, "none");
  EXPECT_EQ(spec.recovery, Recovery::Reissue);
  EXPECT_EQ(ublkd::kMaxSize, 1125899906842624u);
}

TEST(ParseDeviceSpec, MinimalLoopSpecLeavesSizeToTheBackingStore) {
  const DeviceSpec spec = parseDeviceSpec(R"({"target": "loop", "path": "/var/lib/ublk/disk0.img"})");
  EXPECT_EQ(spec.target, TargetKind::Loop);
  EXPECT_EQ(spec.path, "/var/lib/ublk/disk0.img");
  EXPECT_EQ(spec.size, std::nullopt);
  EXPECT_EQ(spec.blockSize, std::nullopt);
}

TEST(ParseDeviceSpec, ReadsEveryKey) {
  const DeviceSpec spec = parseDeviceSpec(R"({
    "version": 1, "target": "loop", "path": "/dev/sdb", "size": "2G", "queues": 8, "depth": 256,
    "block_size": 4096, "read_only": true, "direct_io": false, "scheduler": "mq-deadline", "recovery": "fail-io"
  })");
  EXPECT_EQ(spec.target, TargetKind::Loop);
  EXPECT_EQ(spec.path, "/dev/sdb");
  EXPECT_EQ(spec.size, uint64_t{2} << 30);
  EXPECT_EQ(spec.queues, 8);
  EXPECT_EQ(spec.depth, 256);
  EXPECT_EQ(spec.blockSize, 4096u);
  EXPECT_TRUE(spec.readOnly);
  EXPECT_EQ(spec.directIo, false);
  EXPECT_EQ(spec.scheduler, "mq-deadline");
  EXPECT_EQ(spec.recovery, Recovery::FailIo);
}

TEST(ParseDeviceSpec, AcceptsTheRangeLimits) {
  EXPECT_EQ(parseDeviceSpec(nullSpec(R"("queues": 1, "depth": 1)")).queues, 1);
  EXPECT_EQ(parseDeviceSpec(nullSpec(R"("queues": 64)")).queues, 64);
  EXPECT_EQ(parseDeviceSpec(nullSpec(R"("depth": 4096)")).depth, 4096);
  EXPECT_EQ(parseDeviceSpec(R"({"target": "null", "size": "1P"})").size, ublkd::kMaxSize);
}

TEST(ParseDeviceSpec, AcceptsEveryScheduler) {
  for (const std::string_view scheduler : ublkd::kSchedulers) {
    EXPECT_EQ(parseDeviceSpec(nullSpec(fmt::format(R"("scheduler": "{}")", scheduler))).scheduler, scheduler);
  }
}

TEST(ParseDeviceSpec, AcceptsEveryRecovery) {
  for (const Recovery recovery : {Recovery::None, Recovery::Reissue, Recovery::FailIo}) {
    const auto text = nullSpec(fmt::format(R"("recovery": "{}")", ublkd::toString(recovery)));
    EXPECT_EQ(parseDeviceSpec(text).recovery, recovery);
  }
}

TEST(ParseDeviceSpec, AcceptsEveryBlockSizeWithAMatchingSize) {
  for (const uint32_t blockSize : ublkd::kBlockSizes) {
    const auto text = fmt::format(R"({{"target": "null", "size": {}, "block_size": {}}})", 3 * blockSize, blockSize);
    EXPECT_EQ(parseDeviceSpec(text).blockSize, blockSize);
  }
}

TEST(ParseDeviceSpec, ChecksTheSizeOfALoopSpecToo) {
  EXPECT_EQ(parseDeviceSpec(loopSpec(R"("size": "10G")")).size, uint64_t{10} << 30);
  EXPECT_THAT(rejectionOf(loopSpec(R"("size": 1000)")), Rejects("/size", "multiple of the logical block size"));
}

// --- Rejected documents ---

TEST(ParseDeviceSpec, RejectsInvalidJsonWithTheBytePosition) {
  EXPECT_THAT(rejectionOf(R"({"target": "null",)"), Rejects("", "invalid JSON at byte 19"));
  EXPECT_THAT(rejectionOf("{x"), Rejects("", "invalid JSON at byte 2"));
  EXPECT_THAT(rejectionOf(""), Rejects("", "invalid JSON at byte 1"));
  EXPECT_THAT(rejectionOf(nullSpec() + " trailing"), Rejects("", "invalid JSON at byte"));
}

TEST(ParseDeviceSpec, InvalidJsonReasonLeavesOutTheLibrarysExceptionId) {
  EXPECT_THAT(rejectionOf("{x").reason(), Not(HasSubstr("json.exception")));
}

TEST(ParseDeviceSpec, RejectsANumberBeyondDoubleAsInvalidJson) {
  EXPECT_THAT(rejectionOf(nullSpec(R"("depth": 1e400)")), Rejects("", "invalid JSON"));
}

TEST(ParseDeviceSpec, RejectsADocumentThatIsNotAnObject) {
  for (const char* text : {"[]", R"(["target", "null"])", R"("null")", "42", "null", "true"}) {
    EXPECT_THAT(rejectionOf(text), Rejects("", "a device spec must be a JSON object")) << text;
  }
}

TEST(ParseDeviceSpec, RejectsAnUnknownKeyAndListsTheKnownOnes) {
  EXPECT_THAT(rejectionOf(nullSpec(R"("sise": 4096)")),
              Rejects("/sise",
                      "unknown key (known: version, target, path, size, queues, depth, block_size, "
                      "read_only, direct_io, scheduler, recovery, format, uri, tls_certificates, tls_psk_file, "
                      "tls_username, tls_verify_peer, reconnect_timeout, pool, image, ceph_conf, client_id, "
                      "keyring, cluster, boot)"));
}

TEST(ParseDeviceSpec, UnknownKeyFieldIsAnEscapedJsonPointer) {
  EXPECT_THAT(rejectionOf(nullSpec(R"("a/b~c": 1)")), Rejects("/a~1b~0c", "unknown key"));
}

TEST(ParseDeviceSpec, RejectsADuplicateKey) {
  EXPECT_THAT(rejectionOf(R"({"target": "null", "size": 4096, "size": 8192})"), Rejects("/size", "duplicate key"));
}

TEST(ParseDeviceSpec, AllowsEqualKeysInNestedValuesToReachTheirOwnError) {
  EXPECT_THAT(rejectionOf(nullSpec(R"("queues": {"a": 1, "a": 2})")), Rejects("/queues", "must be an integer"));
}

// --- Rejected fields ---

TEST(ParseDeviceSpec, RejectsAVersionOtherThanOne) {
  EXPECT_THAT(rejectionOf(nullSpec(R"("version": 2)")), Rejects("/version", "must be 1"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("version": 0)")), Rejects("/version", "must be 1"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("version": -1)")), Rejects("/version", "must be 1"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("version": "1")")), Rejects("/version", "must be an integer, not a string"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("version": 1.0)")),
              Rejects("/version", "must be an integer, not a floating-point number"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("version": true)")), Rejects("/version", "must be an integer, not a boolean"));
}

TEST(ParseDeviceSpec, RejectsAMissingTarget) {
  EXPECT_THAT(rejectionOf(R"({"size": 4096})"), Rejects("/target", "is required (one of null, loop, nbd, qcow2, rbd)"));
  EXPECT_THAT(rejectionOf("{}"), Rejects("/target", "is required"));
}

TEST(ParseDeviceSpec, RejectsAnUnknownTarget) {
  EXPECT_THAT(rejectionOf(R"({"target": "nul", "size": 4096})"),
              Rejects("/target", R"(must be one of null, loop, nbd, qcow2, rbd (got "nul"))"));
  EXPECT_THAT(rejectionOf(R"({"target": "Null", "size": 4096})"), Rejects("/target", "must be one of null, loop"));
  EXPECT_THAT(rejectionOf(R"({"target": null, "size": 4096})"), Rejects("/target", "must be a string, not null"));
  EXPECT_THAT(rejectionOf(R"({"target": 0, "size": 4096})"), Rejects("/target", "must be a string, not an integer"));
}

TEST(ParseDeviceSpec, RejectsAPathOnANullTarget) {
  EXPECT_THAT(rejectionOf(nullSpec(R"("path": "/tmp/x.img")")),
              Rejects("/path", "the null target takes no path (only loop and qcow2 do)"));
}

TEST(ParseDeviceSpec, RejectsAnotherTargetsKey) {
  EXPECT_THAT(rejectionOf(R"({"target": "loop", "path": "/a", "uri": "nbd://h/e"})"),
              Rejects("/uri", "the loop target takes no uri (only nbd does)"));
  EXPECT_THAT(rejectionOf(R"({"target": "nbd", "uri": "nbd://h/e", "pool": "rbd"})"),
              Rejects("/pool", "the nbd target takes no pool (only rbd does)"));
  EXPECT_THAT(rejectionOf(R"({"target": "rbd", "image": "i", "direct_io": true})"),
              Rejects("/direct_io", "the rbd target takes no direct_io (only loop and qcow2 do)"));
}

// --- nbd, qcow2 and rbd ---

TEST(ParseDeviceSpec, ReadsAnNbdSpec) {
  const ublkd::DeviceSpec spec = ublkd::parseDeviceSpec(
      R"({"target": "nbd", "uri": "nbds://server/disk", "tls_certificates": "/etc/pki/ublkd", "tls_verify_peer": false,
          "tls_username": "alice", "reconnect_timeout": 5, "queues": 4})");
  EXPECT_EQ(spec.target, ublkd::TargetKind::Nbd);
  EXPECT_EQ(spec.nbd.uri, "nbds://server/disk");
  EXPECT_EQ(spec.nbd.tlsCertificates, "/etc/pki/ublkd");
  EXPECT_EQ(spec.nbd.tlsUsername, "alice");
  EXPECT_FALSE(spec.nbd.tlsVerifyPeer);
  EXPECT_EQ(spec.reconnectTimeout, 5u);
  EXPECT_EQ(spec.queues, 4);
  EXPECT_FALSE(spec.size.has_value());
  EXPECT_EQ(ublkd::parseDeviceSpec(R"({"target": "nbd", "uri": "nbd+unix:///e?socket=/run/s"})").reconnectTimeout,
            ublkd::kDefaultReconnectTimeout);
}

TEST(ParseDeviceSpec, RejectsABadNbdSpec) {
  EXPECT_THAT(rejectionOf(R"({"target": "nbd"})"), Rejects("/uri", "is required for the nbd target"));
  EXPECT_THAT(rejectionOf(R"({"target": "nbd", "uri": "http://h/e"})"),
              Rejects("/uri", "must be an NBD URI starting nbd://, nbds://, nbd+unix://, nbds+unix://"));
  EXPECT_THAT(rejectionOf(R"({"target": "nbd", "uri": "nbd+vsock:///e"})"), Rejects("/uri", "must be an NBD URI"));
  EXPECT_THAT(rejectionOf(R"({"target": "nbd", "uri": 7})"), Rejects("/uri", "must be a string, not an integer"));
  EXPECT_THAT(rejectionOf(R"({"target": "nbd", "uri": "nbd://h/e\u0000x"})"), Rejects("/uri", "NUL"));
  EXPECT_THAT(rejectionOf(R"({"target": "nbd", "uri": "nbd://h/e", "tls_psk_file": "/k"})"),
              Rejects("/tls_psk_file", "needs TLS: an nbds:// or nbds+unix:// uri"));
  EXPECT_THAT(rejectionOf(R"({"target": "nbd", "uri": "nbds://h/e", "tls_psk_file": "k"})"),
              Rejects("/tls_psk_file", "must be an absolute path"));
  EXPECT_THAT(rejectionOf(R"({"target": "nbd", "uri": "nbd://h/e", "reconnect_timeout": -1})"),
              Rejects("/reconnect_timeout", "must be between 0 and 86400"));
}

TEST(ParseDeviceSpec, ReadsAnImageSpec) {
  const ublkd::DeviceSpec qcow2 = ublkd::parseDeviceSpec(R"({"target": "qcow2", "path": "/var/lib/ublk/vm.qcow2"})");
  EXPECT_EQ(qcow2.path, "/var/lib/ublk/vm.qcow2");
  EXPECT_EQ(qcow2.format, "qcow2");
  EXPECT_EQ(ublkd::parseDeviceSpec(R"({"target": "qcow2", "path": "/a.vmdk", "format": "vmdk"})").format, "vmdk");
  EXPECT_THAT(rejectionOf(R"({"target": "qcow2"})"), Rejects("/path", "is required for the qcow2 target"));
  EXPECT_THAT(rejectionOf(R"({"target": "qcow2", "path": "/a", "format": "iso"})"),
              Rejects("/format", "must be one of qcow2, raw, vmdk, vhdx, vdi, vpc, qed"));
}

TEST(ParseDeviceSpec, ReadsAnRbdSpec) {
  const ublkd::DeviceSpec spec = ublkd::parseDeviceSpec(
      R"({"target": "rbd", "image": "disk0", "ceph_conf": "/etc/ceph/ceph.conf", "client_id": "ublk",
          "keyring": "/etc/ceph/ceph.client.ublk.keyring"})");
  EXPECT_EQ(spec.rbd.pool, "rbd");
  EXPECT_EQ(spec.rbd.image, "disk0");
  EXPECT_EQ(spec.rbd.clientId, "ublk");
  EXPECT_EQ(spec.rbd.keyring, "/etc/ceph/ceph.client.ublk.keyring");
  EXPECT_THAT(rejectionOf(R"({"target": "rbd", "pool": "rbd"})"), Rejects("/image", "is required for the rbd target"));
  EXPECT_THAT(rejectionOf(R"({"target": "rbd", "image": "a@snap"})"), Rejects("/image", "must not contain '/' or '@'"));
  EXPECT_THAT(rejectionOf(R"({"target": "rbd", "image": "a", "pool": ""})"), Rejects("/pool", "must not be empty"));
}

TEST(ParseDeviceSpec, RejectsALoopTargetWithoutAPath) {
  EXPECT_THAT(rejectionOf(R"({"target": "loop", "size": 4096})"), Rejects("/path", "is required for the loop target"));
}

TEST(ParseDeviceSpec, RejectsAPathThatIsNotAString) {
  EXPECT_THAT(rejectionOf(R"({"target": "loop", "path": ["/a"]})"), Rejects("/path", "must be a string, not an array"));
  EXPECT_THAT(rejectionOf(R"({"target": "loop", "path": {}})"), Rejects("/path", "must be a string, not an object"));
}

TEST(ParseDeviceSpec, RejectsARelativePath) {
  EXPECT_THAT(rejectionOf(R"({"target": "loop", "path": "disk0.img"})"),
              Rejects("/path", R"(must be an absolute path (got "disk0.img"))"));
  EXPECT_THAT(rejectionOf(R"({"target": "loop", "path": "./disk0.img"})"),
              Rejects("/path", "must be an absolute path"));
  EXPECT_THAT(rejectionOf(R"({"target": "loop", "path": ""})"), Rejects("/path", "must be an absolute path"));
}

TEST(ParseDeviceSpec, RejectsAPathWithANulCharacter) {
  EXPECT_THAT(rejectionOf(R"({"target": "loop", "path": "/tmp/a\u0000b"})"),
              Rejects("/path", "must not contain a NUL character"));
}

TEST(ParseDeviceSpec, RejectsANullTargetWithoutASize) {
  EXPECT_THAT(rejectionOf(R"({"target": "null"})"), Rejects("/size", "is required for the null target"));
}

TEST(ParseDeviceSpec, RejectsAZeroSize) {
  EXPECT_THAT(rejectionOf(R"({"target": "null", "size": 0})"), Rejects("/size", "must be greater than 0"));
  EXPECT_THAT(rejectionOf(R"({"target": "null", "size": "0G"})"), Rejects("/size", "must be greater than 0"));
}

TEST(ParseDeviceSpec, RejectsASizeAboveOnePebibyte) {
  const auto justAbove = fmt::format(R"({{"target": "null", "size": {}}})", ublkd::kMaxSize + 512);
  EXPECT_THAT(rejectionOf(justAbove), Rejects("/size", "must be at most 1P (1125899906842624 bytes)"));
  EXPECT_THAT(rejectionOf(R"({"target": "null", "size": "2P"})"), Rejects("/size", "must be at most 1P"));
}

TEST(ParseDeviceSpec, RejectsASizeThatIsNotAMultipleOfTheBlockSize) {
  EXPECT_THAT(rejectionOf(R"({"target": "null", "size": 1000})"),
              Rejects("/size", "must be a multiple of the logical block size (512 bytes); 1000 bytes is not"));
  EXPECT_THAT(rejectionOf(R"({"target": "null", "size": 6144, "block_size": 4096})"),
              Rejects("/size", "multiple of the logical block size (4096 bytes)"));
}

TEST(ParseDeviceSpec, RejectsASizeOfTheWrongKind) {
  EXPECT_THAT(rejectionOf(R"({"target": "null", "size": "4 K"})"), Rejects("/size", "must be a byte count or a size"));
  EXPECT_THAT(rejectionOf(R"({"target": "null", "size": -4096})"), Rejects("/size", "must not be negative"));
  EXPECT_THAT(rejectionOf(R"({"target": "null", "size": 4096.5})"), Rejects("/size", "must be a byte count"));
  EXPECT_THAT(rejectionOf(R"({"target": "null", "size": true})"), Rejects("/size", "must be a byte count"));
  EXPECT_THAT(rejectionOf(R"({"target": "null", "size": "99999999999999999999"})"),
              Rejects("/size", "does not fit in 64 bits"));
}

TEST(ParseDeviceSpec, RejectsQueuesOutOfRange) {
  EXPECT_THAT(rejectionOf(nullSpec(R"("queues": 0)")), Rejects("/queues", "must be between 1 and 64 (got 0)"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("queues": 65)")), Rejects("/queues", "must be between 1 and 64 (got 65)"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("queues": -1)")), Rejects("/queues", "must be between 1 and 64 (got -1)"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("queues": 18446744073709551615)")), Rejects("/queues", "between 1 and 64"));
}

TEST(ParseDeviceSpec, RejectsQueuesOfTheWrongType) {
  EXPECT_THAT(rejectionOf(nullSpec(R"("queues": 1.5)")),
              Rejects("/queues", "must be an integer, not a floating-point number (1.5)"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("queues": 2.0)")), Rejects("/queues", "must be an integer"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("queues": "2")")), Rejects("/queues", "must be an integer, not a string"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("queues": true)")), Rejects("/queues", "must be an integer, not a boolean"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("queues": null)")), Rejects("/queues", "must be an integer, not null"));
}

TEST(ParseDeviceSpec, RejectsDepthOutOfRangeOrOfTheWrongType) {
  EXPECT_THAT(rejectionOf(nullSpec(R"("depth": 0)")), Rejects("/depth", "must be between 1 and 4096"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("depth": 4097)")), Rejects("/depth", "must be between 1 and 4096"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("depth": -128)")), Rejects("/depth", "must be between 1 and 4096"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("depth": 12.5)")), Rejects("/depth", "must be an integer"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("depth": false)")), Rejects("/depth", "must be an integer"));
}

TEST(ParseDeviceSpec, RejectsAnUnsupportedBlockSize) {
  EXPECT_THAT(rejectionOf(nullSpec(R"("block_size": 256)")),
              Rejects("/block_size", "must be one of 512, 1024, 2048, 4096 (got 256)"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("block_size": 8192)")), Rejects("/block_size", "must be one of"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("block_size": -512)")), Rejects("/block_size", "must be one of"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("block_size": "4K")")), Rejects("/block_size", "must be an integer"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("block_size": 512.0)")), Rejects("/block_size", "must be an integer"));
}

TEST(ParseDeviceSpec, RejectsFlagsThatAreNotBooleans) {
  EXPECT_THAT(rejectionOf(nullSpec(R"("read_only": "yes")")), Rejects("/read_only", "must be a boolean, not a string"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("read_only": 1)")), Rejects("/read_only", "must be a boolean, not an integer"));
  EXPECT_THAT(rejectionOf(loopSpec(R"("direct_io": "true")")), Rejects("/direct_io", "must be a boolean"));
  EXPECT_THAT(rejectionOf(loopSpec(R"("direct_io": 0)")), Rejects("/direct_io", "must be a boolean"));
  EXPECT_THAT(rejectionOf(loopSpec(R"("direct_io": null)")), Rejects("/direct_io", "must be a boolean, not null"));
}

// "boot" is ublk-generator's (a device started at boot); every target takes it, ublkd ignores it.
TEST(ParseDeviceSpec, BootIsABooleanOfEveryTarget) {
  EXPECT_FALSE(parseDeviceSpec(nullSpec()).boot);
  EXPECT_TRUE(parseDeviceSpec(nullSpec(R"("boot": true)")).boot);
  EXPECT_FALSE(parseDeviceSpec(loopSpec(R"("boot": false)")).boot);
  EXPECT_TRUE(parseDeviceSpec(R"({"target": "nbd", "uri": "nbd://h/e", "boot": true})").boot);
  EXPECT_TRUE(parseDeviceSpec(R"({"target": "rbd", "image": "disk0", "boot": true})").boot);
  EXPECT_THAT(rejectionOf(nullSpec(R"("boot": "yes")")), Rejects("/boot", "must be a boolean, not a string"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("boot": 1)")), Rejects("/boot", "must be a boolean, not an integer"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("boot": null)")), Rejects("/boot", "must be a boolean, not null"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("boot": true, "boot": false)")), Rejects("/boot", "duplicate key"));
}

TEST(DeviceName, ProblemNamesTheRule) {
  for (const char* name : {"disk0", "a", "db.data-1_x", "9"}) EXPECT_EQ(ublkd::deviceNameProblem(name), "") << name;
  EXPECT_EQ(ublkd::deviceNameProblem(""), "must be 1 to 64 characters");
  EXPECT_EQ(ublkd::deviceNameProblem(std::string(65, 'a')), "must be 1 to 64 characters");
  EXPECT_EQ(ublkd::deviceNameProblem("-x"), "must start with a letter or digit");
  EXPECT_EQ(ublkd::deviceNameProblem("a/b"), "may contain only letters, digits, '_', '.' and '-'");
}

TEST(ParseDeviceSpec, RejectsAnUnknownScheduler) {
  EXPECT_THAT(rejectionOf(nullSpec(R"("scheduler": "cfq")")),
              Rejects("/scheduler", R"(must be one of none, mq-deadline, kyber, bfq (got "cfq"))"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("scheduler": "")")), Rejects("/scheduler", "must be one of"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("scheduler": 0)")), Rejects("/scheduler", "must be a string"));
}

TEST(ParseDeviceSpec, RejectsAnUnknownRecovery) {
  EXPECT_THAT(rejectionOf(nullSpec(R"("recovery": "fail_io")")),
              Rejects("/recovery", R"(must be one of none, reissue, fail-io (got "fail_io"))"));
  EXPECT_THAT(rejectionOf(nullSpec(R"("recovery": false)")), Rejects("/recovery", "must be a string, not a boolean"));
}

// --- Sizes ---

TEST(ParseSize, TakesAJsonIntegerAsBytes) {
  EXPECT_EQ(parseSize(json(0), "/size"), 0u);
  EXPECT_EQ(parseSize(json(4096), "/size"), 4096u);
  EXPECT_EQ(parseSize(json(int64_t{4096}), "/size"), 4096u);
  EXPECT_EQ(parseSize(json::parse("18446744073709551615"), "/size"), std::numeric_limits<uint64_t>::max());
}

TEST(ParseSize, ReadsBinarySuffixes) {
  const std::vector<std::pair<std::string, uint64_t>> cases = {
      {"4096", 4096},
      {"0", 0},
      {"007", 7},
      {"4096B", 4096},
      {"4096b", 4096},
      {"512K", 512u << 10},
      {"512k", 512u << 10},
      {"10M", uint64_t{10} << 20},
      {"10G", uint64_t{10} << 30},
      {"10GiB", uint64_t{10} << 30},
      {"10GB", uint64_t{10} << 30},
      {"10gib", uint64_t{10} << 30},
      {"10gB", uint64_t{10} << 30},
      {"10GIB", uint64_t{10} << 30},
      {"1T", uint64_t{1} << 40},
      {"1TiB", uint64_t{1} << 40},
      {"1P", uint64_t{1} << 50},
      {"16383P", uint64_t{16383} << 50},
      {"18446744073709551615", std::numeric_limits<uint64_t>::max()},
  };
  for (const auto& [text, bytes] : cases) EXPECT_EQ(parseSize(json(text), "/size"), bytes) << text;
}

TEST(ParseSize, RejectsAnythingElseNamingTheField) {
  for (const char* text : {"",    "K",   "G10",    "10 G", " 10G", "10G ",  "+10",  "-10",  "1.5G", "1,5G",
                           "10X", "10E", "10KiBB", "10iB", "10Ki", "10KBB", "10BB", "0x10", "1e3",  "10K\n"}) {
    EXPECT_THAT(sizeRejectionOf(json(text)), Rejects("/size", "must be a byte count or a size like 4096, 512K, 10M"))
        << '"' << text << '"';
  }
  EXPECT_THAT(sizeRejectionOf(json("ten"), "/devices/0/size"), Rejects("/devices/0/size", "must be a byte count"));
}

TEST(ParseSize, RejectsNonNumbersAndFractions) {
  EXPECT_THAT(sizeRejectionOf(json(-1)), Rejects("/size", "must not be negative (got -1)"));
  EXPECT_THAT(sizeRejectionOf(json(1.5)), Rejects("/size", "(got 1.5)"));
  EXPECT_THAT(sizeRejectionOf(json(true)), Rejects("/size", "must be a byte count"));
  EXPECT_THAT(sizeRejectionOf(json(nullptr)), Rejects("/size", "must be a byte count"));
  EXPECT_THAT(sizeRejectionOf(json::array()), Rejects("/size", "must be a byte count"));
  EXPECT_THAT(sizeRejectionOf(json::object()), Rejects("/size", "must be a byte count"));
}

TEST(ParseSize, RejectsOverflowOfSixtyFourBits) {
  for (const char* text :
       {"18446744073709551616", "99999999999999999999999", "16384P", "17179869184G", "99999999999999999999K"}) {
    EXPECT_THAT(sizeRejectionOf(json(text)), Rejects("/size", "is too large: does not fit in 64 bits")) << text;
  }
  // The JSON parser turns an integer beyond 64 bits into a floating-point number.
  EXPECT_THAT(sizeRejectionOf(json::parse("18446744073709551616")), Rejects("/size", "does not fit in 64 bits"));
  EXPECT_THAT(sizeRejectionOf(json::parse("1e30")), Rejects("/size", "does not fit in 64 bits"));
}

// --- The checked-in examples and schema ---

std::vector<std::filesystem::path> examplePaths() {
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(kSourceDir / "config" / "examples")) {
    paths.push_back(entry.path());
  }
  return paths;
}

TEST(DeviceSpecExamples, EveryExampleParses) {
  const auto paths = examplePaths();
  EXPECT_GE(paths.size(), 3u);
  for (const auto& path : paths) {
    EXPECT_NO_THROW(parseDeviceSpec(readFile(path))) << path;
  }
}

TEST(DeviceSpecExamples, NullIsOneGibibyteOnTwoQueues) {
  const DeviceSpec spec = parseDeviceSpec(readFile(kSourceDir / "config/examples/null.json"));
  EXPECT_EQ(spec.target, TargetKind::Null);
  EXPECT_EQ(spec.size, uint64_t{1} << 30);
  EXPECT_EQ(spec.queues, 2);
}

TEST(DeviceSpecExamples, LoopFileUsesTheDiskImage) {
  const DeviceSpec spec = parseDeviceSpec(readFile(kSourceDir / "config/examples/loop-file.json"));
  EXPECT_EQ(spec.target, TargetKind::Loop);
  EXPECT_EQ(spec.path, "/var/lib/ublk/disk0.img");
}

TEST(DeviceSpecExamples, LoopBlockdevIsReadOnlyDirectIo) {
  const DeviceSpec spec = parseDeviceSpec(readFile(kSourceDir / "config/examples/loop-blockdev.json"));
  EXPECT_EQ(spec.target, TargetKind::Loop);
  EXPECT_THAT(spec.path, ::testing::StartsWith("/dev/"));
  EXPECT_TRUE(spec.readOnly);
  EXPECT_EQ(spec.directIo, true);
}

// The schema is written by hand; these keep it saying what the parser does.
class DeviceSpecSchema : public ::testing::Test {
 protected:
  const json schema = json::parse(readFile(kSourceDir / "config/device-spec.schema.json"));
  const json& property(const char* name) const { return schema.at("properties").at(name); }
};

TEST_F(DeviceSpecSchema, IsDraft202012AndClosed) {
  EXPECT_EQ(schema.at("$schema"), "https://json-schema.org/draft/2020-12/schema");
  EXPECT_EQ(schema.at("additionalProperties"), false);
  EXPECT_EQ(schema.at("required"), json::array({"target"}));
}

TEST_F(DeviceSpecSchema, NamesExactlyTheKeysTheParserKnows) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : schema.at("properties").items()) {
    keys.push_back(key);
    EXPECT_TRUE(value.contains("description")) << key;
  }
  EXPECT_THAT(keys, ::testing::UnorderedElementsAre("version", "target", "path", "size", "queues", "depth",
                                                    "block_size", "read_only", "direct_io", "scheduler", "recovery",
                                                    "format", "uri", "tls_certificates", "tls_psk_file", "tls_username",
                                                    "tls_verify_peer", "reconnect_timeout", "pool", "image",
                                                    "ceph_conf", "client_id", "keyring", "cluster", "boot"));
}

TEST_F(DeviceSpecSchema, EnumsMatchTheParser) {
  EXPECT_EQ(property("target").at("enum"),
            json::array({ublkd::toString(TargetKind::Null), ublkd::toString(TargetKind::Loop),
                         ublkd::toString(TargetKind::Nbd), ublkd::toString(TargetKind::Qcow2),
                         ublkd::toString(TargetKind::Rbd)}));
  EXPECT_EQ(property("format").at("enum"), json(ublkd::kImageFormats));
  EXPECT_EQ(property("recovery").at("enum"),
            json::array({ublkd::toString(Recovery::None), ublkd::toString(Recovery::Reissue),
                         ublkd::toString(Recovery::FailIo)}));
  EXPECT_EQ(property("scheduler").at("enum"), json(ublkd::kSchedulers));
  EXPECT_EQ(property("block_size").at("enum"), json(ublkd::kBlockSizes));
}

TEST_F(DeviceSpecSchema, RangesAndDefaultsMatchTheConstants) {
  EXPECT_EQ(property("version").at("const"), ublkd::kSpecVersion);
  EXPECT_EQ(property("queues").at("minimum"), ublkd::kMinQueues);
  EXPECT_EQ(property("queues").at("maximum"), ublkd::kMaxQueues);
  EXPECT_EQ(property("queues").at("default"), ublkd::kDefaultQueues);
  EXPECT_EQ(property("depth").at("minimum"), ublkd::kMinDepth);
  EXPECT_EQ(property("depth").at("maximum"), ublkd::kMaxDepth);
  EXPECT_EQ(property("depth").at("default"), ublkd::kDefaultDepth);
  EXPECT_EQ(property("size").at("oneOf").at(0).at("maximum"), ublkd::kMaxSize);
  EXPECT_EQ(property("scheduler").at("default"), ublkd::kDefaultScheduler);
  EXPECT_EQ(property("recovery").at("default"), ublkd::toString(ublkd::kDefaultRecovery));
  EXPECT_EQ(property("read_only").at("default"), DeviceSpec{}.readOnly);
  EXPECT_EQ(property("boot").at("default"), DeviceSpec{}.boot);
  EXPECT_EQ(property("reconnect_timeout").at("default"), ublkd::kDefaultReconnectTimeout);
  EXPECT_EQ(property("reconnect_timeout").at("maximum"), ublkd::kMaxReconnectTimeout);
  EXPECT_EQ(property("format").at("default"), DeviceSpec{}.format);
  EXPECT_EQ(property("pool").at("default"), DeviceSpec{}.rbd.pool);
  EXPECT_EQ(property("tls_verify_peer").at("default"), DeviceSpec{}.nbd.tlsVerifyPeer);
}

}  // namespace
