// Statistics, ublkd's side: a read-only mapping of the file, relaxed loads, and the arithmetic.
#include "stats_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <ctime>

#include "mapped_region.h"
#include "throw_errno.h"
#include "unique_fd.h"

namespace ublkd::stats {
namespace {

uint64_t load(const uint64_t& value) { return __atomic_load_n(&value, __ATOMIC_RELAXED); }

void addHistogram(std::vector<uint64_t>& sum, const Histogram& h) {
  for (unsigned b = 0; b < kBuckets; ++b) sum[b] += load(h.counts[b]);
}

std::vector<uint64_t> difference(const std::vector<uint64_t>& now, const std::vector<uint64_t>& before) {
  std::vector<uint64_t> d(now.size());
  for (size_t b = 0; b < now.size(); ++b) d[b] = now[b] >= before[b] ? now[b] - before[b] : 0;
  return d;
}

std::vector<std::pair<uint64_t, uint64_t>> nonEmpty(const std::vector<uint64_t>& histogram) {
  std::vector<std::pair<uint64_t, uint64_t>> buckets;
  for (unsigned b = 0; b < histogram.size(); ++b) {
    if (histogram[b] != 0) buckets.emplace_back(bucketEnd(b), histogram[b]);
  }
  return buckets;
}

Percentiles percentilesOf(const std::vector<uint64_t>& histogram) {
  return {percentile(histogram, 0.5), percentile(histogram, 0.99), percentile(histogram, 0.999)};
}

}  // namespace

std::optional<Snapshot> readSnapshot(const std::filesystem::path& file) {
  const ublk::UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    ublk::throwErrno(errno, "open " + file.string());
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) ublk::throwErrno(errno, "fstat " + file.string());
  if (static_cast<size_t>(st.st_size) < sizeof(Header)) return std::nullopt;
  // The queue daemon only ever grows the file, so a mapping of its size now stays backed.
  const ublk::MappedRegion map(static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd.get(), 0, file.string());
  const auto& header = *map.as<const Header>();
  // Acquire: the writer publishes the magic last, after the layout under it.
  if (__atomic_load_n(&header.magic, __ATOMIC_ACQUIRE) != kMagic || header.version != kVersion) return std::nullopt;
  const uint32_t queues = header.queues;
  if (fileBytes(queues) > map.size()) return std::nullopt;
  Snapshot s;
  s.taken = std::chrono::steady_clock::now();
  s.createdNs = header.createdNs;
  s.queues = queues;
  const auto* counters = reinterpret_cast<const QueueCounters*>(map.as<const std::byte>() + sizeof(Header));
  for (uint32_t q = 0; q < queues; ++q) {
    s.inFlight += load(counters[q].inFlight);
    for (size_t op = 0; op < kOpClasses; ++op) {
      const OpCounters& c = counters[q].ops[op];
      OpSnapshot& sum = s.ops[op];
      sum.ops += load(c.ops);
      sum.bytes += load(c.bytes);
      sum.errors += load(c.errors);
      sum.serviceNs += load(c.serviceNs);
      sum.backendNs += load(c.backendNs);
      addHistogram(sum.service, c.service);
      addHistogram(sum.backend, c.backend);
    }
  }
  return s;
}

double percentile(const std::vector<uint64_t>& histogram, double fraction) {
  uint64_t total = 0;
  for (const uint64_t n : histogram) total += n;
  if (total == 0) return 0;
  const auto rank = static_cast<uint64_t>(std::ceil(fraction * static_cast<double>(total)));
  uint64_t seen = 0;
  for (unsigned b = 0; b < histogram.size(); ++b) {
    seen += histogram[b];
    // The last bucket has no end: its start says "this long or longer".
    if (seen >= rank) return static_cast<double>(b + 1 < kBuckets ? bucketEnd(b) : bucketStart(b)) / 1000.0;
  }
  return static_cast<double>(bucketStart(kBuckets - 1)) / 1000.0;
}

Report History::report(Snapshot now) {
  using namespace std::chrono_literals;
  // The newest sample at least a second old; none at first, then the counters' whole life.
  const Snapshot* base = nullptr;
  if (newer_ && now.taken - newer_->taken >= 1s) {
    base = &*newer_;
  } else if (older_ && now.taken - older_->taken >= 1s) {
    base = &*older_;
  }
  Report r;
  r.sinceNs = now.createdNs;
  r.queues = now.queues;
  r.inFlight = now.inFlight;
  // Counters that started again (a new layout) make the samples before them meaningless.
  if (base != nullptr && base->createdNs != now.createdNs) base = nullptr;
  for (size_t op = 0; base != nullptr && op < kOpClasses; ++op) {
    if (now.ops[op].ops < base->ops[op].ops || now.ops[op].bytes < base->ops[op].bytes) base = nullptr;
  }
  if (base != nullptr) {
    r.interval = std::chrono::duration<double>(now.taken - base->taken).count();
  } else {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    const double nowNs = static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
    r.interval = std::max(0.0, (nowNs - static_cast<double>(now.createdNs)) / 1e9);
  }
  for (size_t op = 0; op < kOpClasses; ++op) {
    const OpSnapshot& n = now.ops[op];
    OpReport& o = r.ops[op];
    o.ops = n.ops;
    o.bytes = n.bytes;
    o.errors = n.errors;
    o.serviceNs = n.serviceNs;
    o.backendNs = n.backendNs;
    const uint64_t ops = base != nullptr ? n.ops - base->ops[op].ops : n.ops;
    const uint64_t bytes = base != nullptr ? n.bytes - base->ops[op].bytes : n.bytes;
    if (r.interval > 0) {
      o.opsPerSecond = static_cast<double>(ops) / r.interval;
      o.bytesPerSecond = static_cast<double>(bytes) / r.interval;
    }
    o.service = percentilesOf(base != nullptr ? difference(n.service, base->ops[op].service) : n.service);
    o.backend = percentilesOf(base != nullptr ? difference(n.backend, base->ops[op].backend) : n.backend);
    o.serviceHistogram = nonEmpty(n.service);
    o.backendHistogram = nonEmpty(n.backend);
  }
  // Keep a sample per second at most: a caller polling fast does not push the base forward.
  if (!newer_ || now.taken - newer_->taken >= 1s) {
    older_ = std::move(newer_);
    newer_ = std::move(now);
  }
  return r;
}

}  // namespace ublkd::stats
