// ublkd's command line: picks the verb and reports failures as "ublkd <verb>: <what>: <why>".
//   ublkd features [--json]      the kernel's ublk features, decoded
//   ublkd serve --spec FILE      serve one device in the foreground until SIGTERM/SIGINT
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "control_device.h"
#include "device_spec.h"
#include "feature_names.h"
#include "server.h"

namespace {

constexpr std::string_view kUsage =
    "usage: ublkd features [--json]\n"
    "       ublkd serve --spec FILE\n"
    "  features   print the ublk features of the running kernel (GET_FEATURES)\n"
    "  serve      create the device FILE describes, print its /dev/ublkbN, serve it until\n"
    "             SIGTERM or SIGINT, then stop and delete it\n";

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int runServe(const std::vector<std::string_view>& args) {
  std::string specPath;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--spec" && i + 1 < args.size()) {
      specPath = args[++i];
    } else {
      fmt::print(stderr, "ublkd serve: unexpected argument '{}'\n{}", args[i], kUsage);
      return 2;
    }
  }
  if (specPath.empty()) {
    fmt::print(stderr, "ublkd serve: --spec FILE is required\n{}", kUsage);
    return 2;
  }
  ublkd::DeviceSpec spec;
  try {
    spec = ublkd::parseDeviceSpec(readFile(specPath));
    ublkd::checkBacking(spec);
  } catch (const ublkd::SpecError& e) {
    fmt::print(stderr, "ublkd serve: invalid spec {}: {}\n", specPath, e.what());
    return 2;
  }
  return ublkd::Server(std::move(spec)).run();
}

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
    if (args[0] == "serve") return runServe({args.begin() + 1, args.end()});
    fmt::print(stderr, "ublkd: unknown verb '{}'\n{}", args[0], kUsage);
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "ublkd {}: {}\n", args[0], e.what());
    return 1;
  }
}
