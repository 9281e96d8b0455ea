// StatsFile and QueueStats: the queue daemon's side of the statistics file (stats_layout.h).
// StatsFile maps the file ublkd passed down (--stats-fd) and lays it out for the device's queues,
// keeping the counters an earlier queue daemon of the same device left. QueueStats is one queue
// thread's RequestObserver: it counts each request and times it at batch granularity.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "mapped_region.h"
#include "queue.h"
#include "stats_layout.h"
#include "unique_fd.h"

namespace ublkd {

class StatsFile {
 public:
  // Sizes and maps `fd` for `queues` queues; a file laid out for another count or version starts
  // again from zero. Throws std::system_error naming the step.
  StatsFile(ublk::UniqueFd fd, uint32_t queues);
  stats::QueueCounters& queue(uint16_t q) const;

 private:
  ublk::UniqueFd fd_;
  ublk::MappedRegion map_;
};

class QueueStats final : public ublk::RequestObserver {
 public:
  QueueStats(stats::QueueCounters& counters, uint16_t depth);

  void batchBegins(std::chrono::steady_clock::time_point now) override { now_ = now; }
  void arrived(uint16_t tag, const ublk::abi::IoDesc& desc) override;
  void started(uint16_t tag) override;
  void committed(uint16_t tag, int result) override;

 private:
  struct Request {
    std::chrono::steady_clock::time_point arrived;
    std::chrono::steady_clock::time_point started;
    uint8_t op = 0;  // stats::OpClass
    bool pending = false;
    bool hasStarted = false;
  };
  stats::QueueCounters& counters_;
  std::vector<Request> requests_;  // per tag
  std::chrono::steady_clock::time_point now_;
};

}  // namespace ublkd
