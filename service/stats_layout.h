// The statistics file of a device (run dir: devices/NAME.stats): what its queue daemon counts, in
// memory ublkd reads while the queue threads write. A Header, then one QueueCounters per hardware
// queue. Each queue's block is written only by that queue's thread, with relaxed 64-bit stores
// (no locked instructions); readers load each value relaxed, so a value never tears, but values
// of one block may be a request apart. Counters survive a queue daemon's restart (the next one
// keeps a file of the same layout), so they only grow while the device exists.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ublkd::stats {

inline constexpr uint64_t kMagic = 0x3154534b4c4255;  // "UBLKST1"
inline constexpr uint32_t kVersion = 1;

enum class OpClass : uint8_t { Read, Write, Flush, Discard, WriteZeroes };
inline constexpr size_t kOpClasses = 5;
inline constexpr std::array<std::string_view, kOpClasses> kOpNames{"read", "write", "flush", "discard", "write_zeroes"};

// Log-linear latency buckets over nanoseconds, 16 per power of two (at most 6.25% wide): values
// below 16 ns have a bucket each; a value v >= 16 with top bit e falls in group e - 3, sub-bucket
// given by the 4 bits below the top one. Values from 2^36 ns (69 s) on share the last bucket.
inline constexpr unsigned kSubBucketBits = 4;
inline constexpr unsigned kSubBuckets = 1u << kSubBucketBits;
inline constexpr unsigned kMaxExponent = 35;  // the top bit of the largest value with its own bucket
inline constexpr unsigned kBuckets = (kMaxExponent - kSubBucketBits + 2) * kSubBuckets;

constexpr unsigned bucketOf(uint64_t ns) {
  if (ns < kSubBuckets) return static_cast<unsigned>(ns);
  const unsigned e = static_cast<unsigned>(std::bit_width(ns)) - 1;
  if (e > kMaxExponent) return kBuckets - 1;
  const unsigned shift = e - kSubBucketBits;
  return (shift + 1) * kSubBuckets + static_cast<unsigned>((ns >> shift) - kSubBuckets);
}

// The smallest value of the bucket after `bucket`: its values are below this. The last bucket has
// no end (UINT64_MAX): it holds every value from bucketStart(kBuckets - 1) on.
constexpr uint64_t bucketEnd(unsigned bucket) {
  if (bucket >= kBuckets - 1) return UINT64_MAX;
  if (bucket < kSubBuckets) return bucket + 1;
  const unsigned shift = bucket / kSubBuckets - 1;
  return (uint64_t{kSubBuckets} + bucket % kSubBuckets + 1) << shift;
}

// The smallest value of `bucket`.
constexpr uint64_t bucketStart(unsigned bucket) {
  if (bucket < kSubBuckets) return bucket;
  const unsigned shift = bucket / kSubBuckets - 1;
  return (uint64_t{kSubBuckets} + bucket % kSubBuckets) << shift;
}

struct Histogram {
  uint64_t counts[kBuckets];
};

struct OpCounters {
  uint64_t ops;        // committed
  uint64_t bytes;      // transferred by the ones that succeeded (READ and WRITE)
  uint64_t errors;     // committed with an error
  uint64_t serviceNs;  // the sums of the two histograms' values
  uint64_t backendNs;
  // From arrival to commit: what ublkd adds to the kernel's own latency.
  Histogram service;
  // From the handler's start to its result: the backend's share (the backing file, the server).
  Histogram backend;
};

struct alignas(64) QueueCounters {
  uint64_t inFlight;  // arrived and not yet committed
  uint64_t reserved[7];
  OpCounters ops[kOpClasses];
};

struct alignas(64) Header {
  uint64_t magic;
  uint32_t version;
  uint32_t queues;
  uint64_t createdNs;  // CLOCK_REALTIME when the counters started
  uint64_t reserved[5];
};

constexpr size_t fileBytes(uint32_t queues) { return sizeof(Header) + size_t{queues} * sizeof(QueueCounters); }

}  // namespace ublkd::stats
