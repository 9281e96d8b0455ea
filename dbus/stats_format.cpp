// Statistics as ublkctl shows them: parsing the bus's a{sv}, and each output format.
#include "stats_format.h"

#include <algorithm>
#include <ctime>
#include <stdexcept>

#include <fmt/format.h>

namespace ublkd::bus {
namespace {

using Dict = std::map<std::string, sdbus::Variant>;

template <typename T>
T field(const Dict& dict, const std::string& key, std::string_view where) {
  const auto it = dict.find(key);
  if (it == dict.end()) throw std::runtime_error(fmt::format("GetStatistics: no '{}'{}", key, where));
  try {
    return it->second.get<T>();
  } catch (const sdbus::Error&) {
    throw std::runtime_error(
        fmt::format("GetStatistics: '{}'{} is of type '{}'", key, where, it->second.peekValueType()));
  }
}

std::vector<std::pair<uint64_t, uint64_t>> histogramField(const Dict& dict, const std::string& key,
                                                          std::string_view where) {
  std::vector<std::pair<uint64_t, uint64_t>> buckets;
  for (const auto& b : field<std::vector<sdbus::Struct<uint64_t, uint64_t>>>(dict, key, where)) {
    buckets.emplace_back(b.get<0>(), b.get<1>());
  }
  return buckets;
}

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

std::string humanCount(uint64_t n) {
  if (n < 100'000) return std::to_string(n);
  if (n < 100'000'000) return fmt::format("{:.1f}k", static_cast<double>(n) / 1e3);
  return fmt::format("{:.1f}M", static_cast<double>(n) / 1e6);
}

std::string localTime(uint64_t usec) {
  const time_t seconds = static_cast<time_t>(usec / 1'000'000);
  tm local{};
  localtime_r(&seconds, &local);
  char text[64];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S %Z", &local);
  return text;
}

// Upper bounds (seconds) of the Prometheus histogram buckets. A log-linear bucket counts under the
// first bound at or above its end, so a count may lag by up to one bucket (6.25%) at a bound.
constexpr std::array<double, 19> kPrometheusBounds{1e-5,  2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01,
                                                   0.025, 0.05,   0.1,  0.25, 0.5,    1,    2.5,  5,      10};

std::string label(std::string_view value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void prometheusHistogram(std::string& out, std::string_view metric, const std::string& labels,
                         const std::vector<std::pair<uint64_t, uint64_t>>& buckets, uint64_t sumNs) {
  uint64_t total = 0;
  for (const auto& b : buckets) total += b.second;
  for (const double bound : kPrometheusBounds) {
    const double boundNs = bound * 1e9;
    uint64_t count = 0;
    for (const auto& [end, n] : buckets) {
      if (static_cast<double>(end) <= boundNs) count += n;
    }
    out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", metric, labels, bound, count);
  }
  out += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", metric, labels, total);
  out += fmt::format("{}_sum{{{}}} {}\n", metric, labels, static_cast<double>(sumNs) / 1e9);
  out += fmt::format("{}_count{{{}}} {}\n", metric, labels, total);
}

double totalIops(const DeviceStatistics& s) {
  double iops = 0;
  for (const auto& op : s.ops) iops += op.opsPerSec;
  return iops;
}

}  // namespace

std::string humanBytes(uint64_t bytes) {
  constexpr std::string_view units = "BKMGTP";
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < units.size()) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{}B", bytes) : fmt::format("{:.1f}{}", value, units[unit]);
}

const OpStatistics& DeviceStatistics::op(std::string_view name) const {
  for (size_t i = 0; i < kOperations.size(); ++i) {
    if (kOperations[i] == name) return ops[i];
  }
  throw std::out_of_range(fmt::format("no operation '{}'", name));
}

DeviceStatistics parseStatistics(std::string name, std::string blockDevice, const Dict& statistics) {
  DeviceStatistics s;
  s.name = std::move(name);
  s.blockDevice = std::move(blockDevice);
  s.sinceUsec = field<uint64_t>(statistics, "since_usec", "");
  s.interval = field<double>(statistics, "interval_sec", "");
  s.queues = field<uint32_t>(statistics, "queues", "");
  s.inFlight = field<uint64_t>(statistics, "in_flight", "");
  for (size_t i = 0; i < kOperations.size(); ++i) {
    const std::string where = fmt::format(" in '{}'", kOperations[i]);
    const Dict d = field<Dict>(statistics, std::string(kOperations[i]), "");
    OpStatistics& o = s.ops[i];
    o.ops = field<uint64_t>(d, "ops", where);
    o.bytes = field<uint64_t>(d, "bytes", where);
    o.errors = field<uint64_t>(d, "errors", where);
    o.serviceSumNs = field<uint64_t>(d, "service_sum_nsec", where);
    o.backendSumNs = field<uint64_t>(d, "backend_sum_nsec", where);
    o.opsPerSec = field<double>(d, "ops_per_sec", where);
    o.bytesPerSec = field<double>(d, "bytes_per_sec", where);
    o.serviceP50 = field<double>(d, "service_p50_usec", where);
    o.serviceP99 = field<double>(d, "service_p99_usec", where);
    o.serviceP999 = field<double>(d, "service_p999_usec", where);
    o.backendP50 = field<double>(d, "backend_p50_usec", where);
    o.backendP99 = field<double>(d, "backend_p99_usec", where);
    o.backendP999 = field<double>(d, "backend_p999_usec", where);
    o.serviceHistogram = histogramField(d, "service_histogram", where);
    o.backendHistogram = histogramField(d, "backend_histogram", where);
  }
  return s;
}

nlohmann::json statisticsJson(const DeviceStatistics& s) {
  nlohmann::json out{
      {"name", s.name},     {"block_device", s.blockDevice}, {"since_usec", s.sinceUsec}, {"interval_sec", s.interval},
      {"queues", s.queues}, {"in_flight", s.inFlight}};
  for (size_t i = 0; i < kOperations.size(); ++i) {
    const OpStatistics& o = s.ops[i];
    out[std::string(kOperations[i])] = {
        {"ops", o.ops},
        {"bytes", o.bytes},
        {"errors", o.errors},
        {"service_sum_nsec", o.serviceSumNs},
        {"backend_sum_nsec", o.backendSumNs},
        {"ops_per_sec", o.opsPerSec},
        {"bytes_per_sec", o.bytesPerSec},
        {"service_usec", {{"p50", o.serviceP50}, {"p99", o.serviceP99}, {"p999", o.serviceP999}}},
        {"backend_usec", {{"p50", o.backendP50}, {"p99", o.backendP99}, {"p999", o.backendP999}}},
        {"service_histogram", o.serviceHistogram},
        {"backend_histogram", o.backendHistogram},
    };
  }
  return out;
}

std::string statisticsTable(const DeviceStatistics& s) {
  std::string out = fmt::format("{} ({}): {} queue{}, {} in flight, counting since {}\n", s.name, s.blockDevice,
                                s.queues, s.queues == 1 ? "" : "s", s.inFlight, localTime(s.sinceUsec));
  out += fmt::format("rates and latency percentiles (µs) over the last {:.1f} s\n", s.interval);
  out += fmt::format("{:<13}{:>10}{:>9}{:>10}{:>9}{:>8}{:>9}{:>9}{:>9}{:>12}\n", "OP", "IOPS", "MiB/s", "OPS", "BYTES",
                     "ERRORS", "P50", "P99", "P99.9", "BACKEND-P99");
  for (size_t i = 0; i < kOperations.size(); ++i) {
    const OpStatistics& o = s.ops[i];
    out += fmt::format("{:<13}{:>10.1f}{:>9.1f}{:>10}{:>9}{:>8}{:>9.0f}{:>9.0f}{:>9.0f}{:>12.0f}\n", kOperations[i],
                       o.opsPerSec, mib(o.bytesPerSec), humanCount(o.ops), humanBytes(o.bytes), o.errors, o.serviceP50,
                       o.serviceP99, o.serviceP999, o.backendP99);
  }
  return out;
}

std::optional<TopOrder> topOrderNamed(std::string_view name) {
  if (name == "iops") return TopOrder::Iops;
  if (name == "bandwidth") return TopOrder::Bandwidth;
  if (name == "latency") return TopOrder::Latency;
  if (name == "errors") return TopOrder::Errors;
  if (name == "name") return TopOrder::Name;
  return std::nullopt;
}

std::string topTable(std::vector<TopRow> rows, TopOrder order) {
  // Devices without statistics (starting, failed) go last, by name.
  const auto key = [order](const TopRow& r) -> double {
    if (!r.stats) return -1;
    const DeviceStatistics& s = *r.stats;
    switch (order) {
      case TopOrder::Iops:
        return totalIops(s);
      case TopOrder::Bandwidth:
        return s.op("read").bytesPerSec + s.op("write").bytesPerSec;
      case TopOrder::Latency:
        return std::max(s.op("read").serviceP99, s.op("write").serviceP99);
      case TopOrder::Errors: {
        uint64_t errors = 0;
        for (const auto& o : s.ops) errors += o.errors;
        return static_cast<double>(errors);
      }
      case TopOrder::Name:
        break;
    }
    return 0;
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const TopRow& a, const TopRow& b) {
    if (order == TopOrder::Name || key(a) == key(b)) return a.name < b.name;
    return key(a) > key(b);
  });
  std::string out = fmt::format("{:<16} {:<13} {:<10}{:>9}{:>9}{:>9}{:>9}{:>9}{:>10}{:>10}{:>8}\n", "NAME", "DEVICE",
                                "STATE", "R/s", "W/s", "RMiB/s", "WMiB/s", "INFLIGHT", "R-P99us", "W-P99us", "ERRORS");
  for (const TopRow& r : rows) {
    const std::string device = r.blockDevice.empty() ? "-" : r.blockDevice;
    if (!r.stats) {
      out += fmt::format("{:<16} {:<13} {:<10}{:>9}{:>9}{:>9}{:>9}{:>9}{:>10}{:>10}{:>8}\n", r.name, device, r.state,
                         "-", "-", "-", "-", "-", "-", "-", "-");
      continue;
    }
    const DeviceStatistics& s = *r.stats;
    const OpStatistics& rd = s.op("read");
    const OpStatistics& wr = s.op("write");
    uint64_t errors = 0;
    for (const auto& o : s.ops) errors += o.errors;
    out += fmt::format("{:<16} {:<13} {:<10}{:>9.0f}{:>9.0f}{:>9.1f}{:>9.1f}{:>9}{:>10.0f}{:>10.0f}{:>8}\n", r.name,
                       device, r.state, rd.opsPerSec, wr.opsPerSec, mib(rd.bytesPerSec), mib(wr.bytesPerSec),
                       s.inFlight, rd.serviceP99, wr.serviceP99, errors);
  }
  return out;
}

std::string prometheusText(const std::vector<DeviceStatistics>& devices) {
  struct Counter {
    std::string_view metric, help;
    uint64_t OpStatistics::*value;
  };
  const Counter counters[] = {
      {"ublk_requests_total", "Requests ublkd committed, by operation.", &OpStatistics::ops},
      {"ublk_bytes_total", "Bytes read or written by the requests that succeeded.", &OpStatistics::bytes},
      {"ublk_errors_total", "Requests committed with an error.", &OpStatistics::errors},
  };
  std::string out;
  for (const Counter& c : counters) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n", c.metric, c.help, c.metric);
    for (const DeviceStatistics& d : devices) {
      for (size_t i = 0; i < kOperations.size(); ++i) {
        out += fmt::format("{}{{device=\"{}\",op=\"{}\"}} {}\n", c.metric, label(d.name), kOperations[i],
                           d.ops[i].*c.value);
      }
    }
  }
  out += "# HELP ublk_in_flight Requests the queue daemon holds.\n# TYPE ublk_in_flight gauge\n";
  for (const DeviceStatistics& d : devices) {
    out += fmt::format("ublk_in_flight{{device=\"{}\"}} {}\n", label(d.name), d.inFlight);
  }
  out +=
      "# HELP ublk_counting_since_seconds When the device's counters started (Unix time).\n"
      "# TYPE ublk_counting_since_seconds gauge\n";
  for (const DeviceStatistics& d : devices) {
    out += fmt::format("ublk_counting_since_seconds{{device=\"{}\"}} {}\n", label(d.name), d.sinceUsec / 1'000'000);
  }
  const std::pair<std::string_view, std::string_view> histograms[] = {
      {"ublk_service_seconds", "Time from a request's arrival in ublkd to its commit."},
      {"ublk_backend_seconds", "Time from the target's start of a request to its result."},
  };
  for (const auto& [metric, help] : histograms) {
    out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", metric, help, metric);
    const bool service = metric == histograms[0].first;
    for (const DeviceStatistics& d : devices) {
      for (size_t i = 0; i < kOperations.size(); ++i) {
        const OpStatistics& o = d.ops[i];
        prometheusHistogram(out, metric, fmt::format("device=\"{}\",op=\"{}\"", label(d.name), kOperations[i]),
                            service ? o.serviceHistogram : o.backendHistogram,
                            service ? o.serviceSumNs : o.backendSumNs);
      }
    }
  }
  return out;
}

}  // namespace ublkd::bus
