// StatsFile and QueueStats: the counters' layout on open, and the single-writer updates.
#include "stats_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "throw_errno.h"

namespace ublkd {
namespace {

namespace abi = ublk::abi;

// Only this thread writes `value`; readers in other processes load it relaxed. A plain
// read-modify-write, published with a store that cannot tear: no locked instruction.
void add(uint64_t& value, uint64_t n) {
  std::atomic_ref<uint64_t> ref(value);
  ref.store(ref.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

uint8_t opClassOf(const abi::IoDesc& desc) {
  switch (abi::opOf(desc)) {
    case abi::Op::Read:
      return static_cast<uint8_t>(stats::OpClass::Read);
    case abi::Op::Flush:
      return static_cast<uint8_t>(stats::OpClass::Flush);
    case abi::Op::Discard:
      return static_cast<uint8_t>(stats::OpClass::Discard);
    case abi::Op::WriteZeroes:
      return static_cast<uint8_t>(stats::OpClass::WriteZeroes);
    default:  // WRITE_SAME and anything newer move data the way a WRITE does
      return static_cast<uint8_t>(stats::OpClass::Write);
  }
}

uint64_t nanoseconds(std::chrono::steady_clock::duration d) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  return ns > 0 ? static_cast<uint64_t>(ns) : 0;
}

}  // namespace

StatsFile::StatsFile(ublk::UniqueFd fd, uint32_t queues) : fd_(std::move(fd)) {
  const size_t bytes = stats::fileBytes(queues);
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) ublk::throwErrno(errno, "fstat of the statistics file");
  // Read the header through the file, not a mapping: a short file has none.
  stats::Header header{};
  const bool kept = static_cast<size_t>(st.st_size) >= bytes &&
                    ::pread(fd_.get(), &header, sizeof(header), 0) == static_cast<ssize_t>(sizeof(header)) &&
                    header.magic == stats::kMagic && header.version == stats::kVersion && header.queues == queues;
  // Never shrink it: ublkd may have it mapped. Allocated, not just sized: a page the filesystem
  // (tmpfs) could not provide later would be a SIGBUS in a queue thread.
  if (const int err = ::posix_fallocate(fd_.get(), 0, static_cast<off_t>(bytes)); err != 0) {
    ublk::throwErrno(err, "allocating the statistics file");
  }
  map_ = ublk::MappedRegion(bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0, "the statistics file");
  auto* mapped = map_.as<stats::Header>();
  if (!kept) {
    // Another layout, or a new file: zero the counters first, so a reader that sees the magic
    // sees them zeroed.
    std::atomic_ref<uint64_t>(mapped->magic).store(0, std::memory_order_release);
    std::memset(map_.as<std::byte>() + sizeof(stats::Header), 0, bytes - sizeof(stats::Header));
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    mapped->version = stats::kVersion;
    mapped->queues = queues;
    mapped->createdNs = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
    std::atomic_ref<uint64_t>(mapped->magic).store(stats::kMagic, std::memory_order_release);
  }
  // Requests in flight when the last daemon died were requeued to us (or failed): not ours.
  for (uint32_t q = 0; q < queues; ++q) std::atomic_ref<uint64_t>(queue(q).inFlight).store(0);
}

stats::QueueCounters& StatsFile::queue(uint16_t q) const {
  return reinterpret_cast<stats::QueueCounters*>(map_.as<std::byte>() + sizeof(stats::Header))[q];
}

QueueStats::QueueStats(stats::QueueCounters& counters, uint16_t depth) : counters_(counters), requests_(depth) {}

void QueueStats::arrived(uint16_t tag, const abi::IoDesc& desc) {
  Request& r = requests_[tag];
  if (r.pending) return;
  r = {.arrived = now_, .started = {}, .op = opClassOf(desc), .pending = true, .hasStarted = false};
  add(counters_.inFlight, 1);
}

void QueueStats::started(uint16_t tag) {
  requests_[tag].started = now_;
  requests_[tag].hasStarted = true;
}

void QueueStats::committed(uint16_t tag, int result) {
  Request& r = requests_[tag];
  if (!r.pending) return;
  r.pending = false;
  stats::OpCounters& op = counters_.ops[r.op];
  add(op.ops, 1);
  if (result < 0) {
    add(op.errors, 1);
  } else if (r.op == static_cast<uint8_t>(stats::OpClass::Read) ||
             r.op == static_cast<uint8_t>(stats::OpClass::Write)) {
    add(op.bytes, static_cast<uint64_t>(result));
  }
  const uint64_t service = nanoseconds(now_ - r.arrived);
  add(op.service.counts[stats::bucketOf(service)], 1);
  add(op.serviceNs, service);
  if (r.hasStarted) {
    const uint64_t backend = nanoseconds(now_ - r.started);
    add(op.backend.counts[stats::bucketOf(backend)], 1);
    add(op.backendNs, backend);
  }
  add(counters_.inFlight, static_cast<uint64_t>(-1));
}

}  // namespace ublkd
