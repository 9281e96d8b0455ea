// ublkctl's statistics output: the Prometheus text is well formed (cumulative buckets ending in
// the count, every series labelled), and the table and JSON carry what GetStatistics said.
#include "stats_format.h"

#include <sstream>

#include <gtest/gtest.h>

namespace ublkd::bus {
namespace {

DeviceStatistics sample() {
  DeviceStatistics s;
  s.name = "disk0";
  s.blockDevice = "/dev/ublkb0";
  s.sinceUsec = 1'700'000'000'000'000;
  s.interval = 2;
  s.queues = 2;
  s.inFlight = 3;
  OpStatistics& read = s.ops[0];
  read.ops = 6;
  read.bytes = 6 * 4096;
  read.opsPerSec = 3;
  read.serviceP99 = 500;
  read.serviceSumNs = 3'000'000;
  // 2 requests under 10 us, 3 around 300 us, 1 at 2 s.
  read.serviceHistogram = {{8'192, 2}, {311'296, 3}, {2'147'483'648, 1}};
  return s;
}

TEST(StatsFormat, PrometheusBucketsAreCumulativeAndEndInTheCount) {
  const std::string text = prometheusText({sample()});
  EXPECT_NE(text.find("# TYPE ublk_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("ublk_requests_total{device=\"disk0\",op=\"read\"} 6\n"), std::string::npos);
  EXPECT_NE(text.find("ublk_in_flight{device=\"disk0\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("ublk_service_seconds_bucket{device=\"disk0\",op=\"read\",le=\"1e-05\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("ublk_service_seconds_bucket{device=\"disk0\",op=\"read\",le=\"0.0005\"} 5\n"),
            std::string::npos);
  EXPECT_NE(text.find("ublk_service_seconds_bucket{device=\"disk0\",op=\"read\",le=\"2.5\"} 6\n"), std::string::npos);
  EXPECT_NE(text.find("ublk_service_seconds_bucket{device=\"disk0\",op=\"read\",le=\"+Inf\"} 6\n"), std::string::npos);
  EXPECT_NE(text.find("ublk_service_seconds_count{device=\"disk0\",op=\"read\"} 6\n"), std::string::npos);
  EXPECT_NE(text.find("ublk_service_seconds_sum{device=\"disk0\",op=\"read\"} 0.003\n"), std::string::npos);
  // Every line is a comment or a labelled sample of a ublk_ metric.
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_TRUE(line.starts_with("# ") || (line.starts_with("ublk_") && line.find("{device=\"") != std::string::npos))
        << line;
  }
}

TEST(StatsFormat, TableAndJsonSayWhatTheBusSaid) {
  const DeviceStatistics s = sample();
  const std::string table = statisticsTable(s);
  EXPECT_NE(table.find("disk0 (/dev/ublkb0): 2 queues, 3 in flight"), std::string::npos);
  EXPECT_NE(table.find("over the last 2.0 s"), std::string::npos);
  const auto json = statisticsJson(s);
  EXPECT_EQ(json["read"]["ops"], 6);
  EXPECT_EQ(json["read"]["service_usec"]["p99"], 500.0);
  EXPECT_EQ(json["in_flight"], 3);
}

TEST(StatsFormat, TopPutsTheBusiestFirstAndDevicesWithoutStatisticsLast) {
  DeviceStatistics busy = sample();
  busy.name = "busy";
  busy.ops[0].opsPerSec = 1000;
  const std::string table = topTable({{"starting", "", "starting", std::nullopt},
                                      {"disk0", "/dev/ublkb0", "live", sample()},
                                      {"busy", "/dev/ublkb1", "live", busy}},
                                     TopOrder::Iops);
  const auto at = [&](std::string_view name) { return table.find(std::string(name) + " "); };
  EXPECT_LT(at("busy"), at("disk0"));
  EXPECT_LT(at("disk0"), at("starting"));
}

}  // namespace
}  // namespace ublkd::bus
