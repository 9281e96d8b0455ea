// Statistics, ublkd's side: reads a device's statistics file (stats_layout.h) into a Snapshot,
// summed over its queues, and turns snapshots into what callers see (Report): totals, rates over
// a recent interval, and latency percentiles over that interval.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <utility>
#include <vector>

#include "stats_layout.h"

namespace ublkd::stats {

struct OpSnapshot {
  uint64_t ops = 0;
  uint64_t bytes = 0;
  uint64_t errors = 0;
  uint64_t serviceNs = 0, backendNs = 0;
  std::vector<uint64_t> service = std::vector<uint64_t>(kBuckets);
  std::vector<uint64_t> backend = std::vector<uint64_t>(kBuckets);
};

struct Snapshot {
  std::chrono::steady_clock::time_point taken;
  uint64_t createdNs = 0;  // CLOCK_REALTIME when the counters started
  uint32_t queues = 0;
  uint64_t inFlight = 0;
  std::array<OpSnapshot, kOpClasses> ops;
};

// The file's counters now; nullopt while there are none to read (no file yet, or a queue daemon
// still laying it out). Throws std::system_error on any other failure to read it.
std::optional<Snapshot> readSnapshot(const std::filesystem::path& file);

struct Percentiles {
  // Microseconds: the upper end of the bucket (within 6.25%; 68.7 s, the last bucket's start,
  // means that long or longer).
  double p50 = 0, p99 = 0, p999 = 0;
};

struct OpReport {
  uint64_t ops = 0, bytes = 0, errors = 0;      // since the counters started
  uint64_t serviceNs = 0, backendNs = 0;        // the latencies' sums, since the counters started
  double opsPerSecond = 0, bytesPerSecond = 0;  // over the interval
  Percentiles service, backend;                 // over the interval; zero without requests
  std::vector<std::pair<uint64_t, uint64_t>> serviceHistogram,
      backendHistogram;  // (bucket end ns, count), lifetime, non-empty buckets
};

struct Report {
  uint64_t sinceNs = 0;  // CLOCK_REALTIME when the counters started
  double interval = 0;   // seconds the rates and percentiles cover
  uint32_t queues = 0;
  uint64_t inFlight = 0;
  std::array<OpReport, kOpClasses> ops;
};

// The latency below which `fraction` of the histogram's requests fall, in microseconds.
double percentile(const std::vector<uint64_t>& histogram, double fraction);

// One device's recent snapshots: rates cover the time since the newest sample at least a second
// old (the first report covers the counters' whole life), so callers polling at any pace, or
// several at once, each get a rate over a second or more.
class History {
 public:
  Report report(Snapshot now);

 private:
  std::optional<Snapshot> older_, newer_;
};

}  // namespace ublkd::stats
