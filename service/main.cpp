// ublkd's command line: picks the verb and reports failures as "ublkd: <what>: <why>".
//   ublkd features [--json]   the kernel's ublk features, decoded
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "control_device.h"
#include "feature_names.h"

namespace {

constexpr std::string_view kUsage =
    "usage: ublkd features [--json]\n"
    "  features   print the ublk features of the running kernel (GET_FEATURES)\n";

int runFeatures(const std::vector<std::string_view>& args) {
  bool json = false;
  for (const auto arg : args) {
    if (arg == "--json") {
      json = true;
    } else {
      fmt::print(stderr, "ublkd features: unknown option '{}'\n{}", arg, kUsage);
      return 2;
    }
  }
  ublk::ControlDevice control;
  const uint64_t mask = control.getFeatures();
  const auto names = ublk::featureNames(mask);
  if (json) {
    fmt::print("{}\n", nlohmann::json{{"mask", mask}, {"features", names}}.dump());
  } else {
    fmt::print("ublk features {:#x}:\n", mask);
    for (const auto& name : names) fmt::print("  {}\n", name);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    fmt::print(args.empty() ? stderr : stdout, "{}", kUsage);
    return args.empty() ? 2 : 0;
  }
  try {
    if (args[0] == "features") return runFeatures({args.begin() + 1, args.end()});
    fmt::print(stderr, "ublkd: unknown verb '{}'\n{}", args[0], kUsage);
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "ublkd {}: {}\n", args[0], e.what());
    return 1;
  }
}
