// Statistics as ublkctl shows them: org.ublk.Device.GetStatistics' a{sv} parsed into
// DeviceStatistics, and printed as a table (`ublkctl stats`), JSON, a live overview of all devices
// (`ublkctl top`) or the Prometheus text format (`ublkctl stats --prometheus`).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sdbus-c++/sdbus-c++.h>
#include <nlohmann/json.hpp>

namespace ublkd::bus {

// The operations GetStatistics reports, in the order they are shown.
inline constexpr std::array<std::string_view, 5> kOperations{"read", "write", "flush", "discard", "write_zeroes"};

struct OpStatistics {
  uint64_t ops = 0, bytes = 0, errors = 0;
  uint64_t serviceSumNs = 0, backendSumNs = 0;
  double opsPerSec = 0, bytesPerSec = 0;
  double serviceP50 = 0, serviceP99 = 0, serviceP999 = 0;  // microseconds
  double backendP50 = 0, backendP99 = 0, backendP999 = 0;
  std::vector<std::pair<uint64_t, uint64_t>> serviceHistogram, backendHistogram;  // (bucket end ns, count)
};

struct DeviceStatistics {
  std::string name;
  std::string blockDevice;
  uint64_t sinceUsec = 0;
  double interval = 0;
  uint32_t queues = 0;
  uint64_t inFlight = 0;
  std::array<OpStatistics, kOperations.size()> ops;  // in kOperations' order

  const OpStatistics& op(std::string_view name) const;
};

// Throws std::runtime_error naming a key that is missing or of another type.
DeviceStatistics parseStatistics(std::string name, std::string blockDevice,
                                 const std::map<std::string, sdbus::Variant>& statistics);

nlohmann::json statisticsJson(const DeviceStatistics& stats);
std::string statisticsTable(const DeviceStatistics& stats);

// One line of `ublkctl top`: a device, and its statistics if it has any (a live one).
struct TopRow {
  std::string name, blockDevice, state;
  std::optional<DeviceStatistics> stats;
};
enum class TopOrder { Iops, Bandwidth, Latency, Errors, Name };
// TopOrder named on the command line: iops, bandwidth, latency, errors, name.
std::optional<TopOrder> topOrderNamed(std::string_view name);
std::string topTable(std::vector<TopRow> rows, TopOrder order);

// "512B", "1.5K", "10.0G": bytes in powers of 1024, one decimal.
std::string humanBytes(uint64_t bytes);

// The devices' counters, histograms and in-flight requests in the Prometheus text format
// (version 0.0.4), as node_exporter's textfile collector reads it.
std::string prometheusText(const std::vector<DeviceStatistics>& devices);

}  // namespace ublkd::bus
