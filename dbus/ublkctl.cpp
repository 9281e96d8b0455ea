// ublkctl: the command line over ublkd's D-Bus API. One function per verb; every failure prints
// "ublkctl <verb>: <message>" and exits with the code of its named error (see kUsage).
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "client.h"
#include "device_spec.h"
#include "errors.h"
#include "manager.h"
#include "stats_format.h"
#include "text_file.h"

namespace {

using ublkd::bus::Client;
using ublkd::bus::DeviceRow;
using Args = std::vector<std::string_view>;
using namespace std::chrono_literals;

constexpr int kUsageError = 2;
constexpr int kUnreachable = 9;

constexpr std::string_view kUsage =
    "usage: ublkctl [--address ADDRESS] VERB [ARGS]\n"
    "  list [--json]                          the devices ublkd serves\n"
    "  create NAME --spec FILE [--watch]      create a device from a spec file ('-' reads stdin)\n"
    "  delete NAME [--wait SECONDS] [--missing-ok] [--leave-busy-at-shutdown]\n"
    "                                         stop and remove a device\n"
    "  restart NAME                           replace a device's queue daemon without I/O errors\n"
    "  resize NAME SIZE [--force]             grow (or with --force shrink) a live device\n"
    "  status NAME [--json]                   one device's properties\n"
    "  stats NAME [--json] [--watch SECONDS]  a device's I/O counters, rates and latency\n"
    "  stats [NAME] --prometheus [--output FILE] [--watch SECONDS]\n"
    "                                         every device's statistics for Prometheus\n"
    "  top [--interval SECONDS] [--sort ORDER] [--iterations N]\n"
    "                                         a live table of all devices, busiest first\n"
    "  features [--json]                      the kernel's ublk features, as ublkd sees them\n"
    "  VERB --help                            help on one verb\n"
    "ADDRESS is a D-Bus address; the default is the system bus.\n"
    "exit codes: 0 success, 1 failed, 2 usage, 3 invalid spec, 4 not found, 5 exists, 6 busy,\n"
    "            7 kernel unsupported, 8 permission denied, 9 ublkd unreachable, 10 timed out\n"
    "            (the kernel or a backing store did not answer in time), 11 backend unavailable (the\n"
    "            NBD server, Ceph cluster or image the spec names cannot be reached or opened)\n";

const std::map<std::string_view, std::string_view> kVerbHelp = {
    {"list",
     "usage: ublkctl list [--json]\n"
     "Prints NAME ID TARGET STATE SIZE DEVICE for each device, or a JSON array of objects with\n"
     "the keys name, id, target, state, size (bytes) and block_device.\n"},
    {"create",
     "usage: ublkctl create NAME --spec FILE [--watch]\n"
     "Creates device NAME from the device spec in FILE (see /usr/share/doc/ublkd/examples) and\n"
     "prints its block device once it is live. With --watch, stays in the foreground until the\n"
     "device is deleted (exit 0), or fails or is removed for another reason (exit 1), telling\n"
     "systemd READY=1 once it is live and its /dev/ublk/by-name link exists: this is how\n"
     "ublk@.service runs. A queue daemon that dies and is recovered does not end the watch.\n"},
    {"delete",
     "usage: ublkctl delete NAME [--wait SECONDS] [--missing-ok] [--leave-busy-at-shutdown]\n"
     "Stops and removes device NAME. A device in use (mounted, or held by another device) is\n"
     "refused with exit code 6; --wait retries for up to SECONDS until it is released.\n"
     "--missing-ok: a device that does not exist is success.\n"
     "--leave-busy-at-shutdown (ublk@.service's ExecStop): while the system shuts down, a device\n"
     "in use is left to its queue daemon, which serves it until after filesystems are unmounted.\n"},
    {"restart",
     "usage: ublkctl restart NAME\n"
     "Planned handover: device NAME's queue daemon quiesces the device and exits, and a new one\n"
     "takes it over through user recovery. I/O waits meanwhile; none fails. Needs a kernel with\n"
     "UBLK_F_QUIESCE (Linux 6.16 or newer; exit code 7 without it).\n"},
    {"resize",
     "usage: ublkctl resize NAME SIZE [--force]\n"
     "Changes the size of live device NAME to SIZE (bytes, or with a K, M, G or T suffix; a\n"
     "multiple of the device's logical block) without stopping it; the kernel tells the\n"
     "device's users (resize2fs can then grow a mounted ext4). A loop device's backing file\n"
     "grows first; a block device must be that large already. Only null and loop devices (the\n"
     "others have their backend's size). A shrink cuts off what lies past the new end and needs\n"
     "--force; the backing file is left as it is. Needs UBLK_F_UPDATE_SIZE (Linux 6.16 or newer;\n"
     "exit code 7 without it).\n"},
    {"status",
     "usage: ublkctl status NAME [--json]\n"
     "Prints the properties of device NAME: Name, Id, Target, State, Size, Queues, Depth,\n"
     "BlockDevice, CharDevice, RestartCount, LastExitReason and DataPath; for root and the\n"
     "device's creator also Backing, Spec and, for a failed device, Error (why it failed).\n"},
    {"stats",
     "usage: ublkctl stats NAME [--json] [--watch SECONDS]\n"
     "       ublkctl stats [NAME] --prometheus [--output FILE] [--watch SECONDS]\n"
     "Prints what device NAME's queue threads counted: per operation (read, write, flush,\n"
     "discard, write_zeroes) the requests, bytes and errors since the device was created, the\n"
     "rates over the last interval (the time since an earlier sample at least a second old), and\n"
     "the 50th, 99th and 99.9th percentiles of the latency ublkd adds (arrival to commit) and of\n"
     "the backend's share, over the same interval. --json prints the same as an object, with the\n"
     "histograms. --watch prints again every SECONDS until interrupted.\n"
     "--prometheus prints every device's counters (or NAME's) in the Prometheus text format;\n"
     "--output writes FILE atomically instead (for node_exporter's textfile collector), and with\n"
     "--watch rewrites it every SECONDS. Anyone may read statistics; no privilege is needed.\n"},
    {"top",
     "usage: ublkctl top [--interval SECONDS] [--sort ORDER] [--iterations N]\n"
     "A table of all devices, refreshed in place every SECONDS (default 2): reads and writes per\n"
     "second, MiB/s, requests in flight, 99th percentile latency (µs) and errors. ORDER is iops\n"
     "(default), bandwidth, latency, errors or name. Ends after N refreshes, or on Ctrl-C.\n"},
    {"features",
     "usage: ublkctl features [--json]\n"
     "Prints ublkd's version and the ublk features of the running kernel, decoded.\n"},
};

// A usage error: exits 2 with the verb's help.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string readSpec(std::string_view path) {
  if (path == "-") {
    std::stringstream text;
    text << std::cin.rdbuf();
    return text.str();
  }
  try {
    return ublkd::readTextFile(std::string(path));
  } catch (const std::runtime_error& e) {
    throw UsageError(fmt::format("spec file: {}", e.what()));
  }
}

// A verb's arguments: at most one NAME, flags, and options that take a value.
struct VerbArgs {
  std::string name;
  std::set<std::string_view> flags;
  std::map<std::string_view, std::string_view> values;
  bool has(std::string_view flag) const { return flags.contains(flag); }
};

VerbArgs parseVerbArgs(const Args& args, std::set<std::string_view> flags, std::set<std::string_view> valued = {},
                       bool takesName = false, bool nameOptional = false) {
  VerbArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    if (valued.contains(args[i]) && i + 1 < args.size()) {
      parsed.values[args[i]] = args[i + 1];
      ++i;
    } else if (flags.contains(args[i])) {
      parsed.flags.insert(args[i]);
    } else if (takesName && parsed.name.empty() && !args[i].starts_with("-")) {
      parsed.name = args[i];
    } else {
      throw UsageError(fmt::format("unexpected argument '{}'", args[i]));
    }
  }
  if (takesName && !nameOptional && parsed.name.empty()) throw UsageError("NAME is required");
  return parsed;
}

// The whole of `text` as a number (from_chars: no sign for unsigned, no spaces, no suffix).
template <typename Number>
bool parsesWhole(std::string_view text, Number& number) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  return ec == std::errc() && end == text.data() + text.size();
}

const DeviceRow* findRow(const std::vector<DeviceRow>& rows, std::string_view name) {
  for (const auto& row : rows) {
    if (row.name == name) return &row;
  }
  return nullptr;
}

int list(Client& client, const Args& args) {
  const bool json = parseVerbArgs(args, {"--json"}).has("--json");
  const auto rows = client.list();
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : rows) {
      out.push_back({{"name", r.name},
                     {"id", r.id},
                     {"target", r.target},
                     {"state", r.state},
                     {"size", r.sizeBytes},
                     {"block_device", r.blockDevice}});
    }
    fmt::print("{}\n", out.dump());
    return 0;
  }
  fmt::print("{:<20} {:>4} {:<6} {:<9} {:>8} {}\n", "NAME", "ID", "TARGET", "STATE", "SIZE", "DEVICE");
  for (const auto& r : rows) {
    const std::string id = r.id == ublkd::kNoDeviceId ? "-" : std::to_string(r.id);
    fmt::print("{:<20} {:>4} {:<6} {:<9} {:>8} {}\n", r.name, id, r.target, r.state,
               ublkd::bus::humanBytes(r.sizeBytes), r.blockDevice.empty() ? "-" : r.blockDevice);
  }
  return 0;
}

// udev makes /dev/ublk/by-name/NAME shortly after the device goes live; wait for it if udev runs.
void waitForLink(const std::string& name) {
  if (!std::filesystem::exists("/run/udev/control")) return;
  const std::filesystem::path link = "/dev/ublk/by-name/" + name;
  for (int i = 0; i < 100 && !std::filesystem::exists(link); ++i) std::this_thread::sleep_for(100ms);
  if (!std::filesystem::exists(link)) fmt::print(stderr, "ublkctl create: warning: {} did not appear\n", link.string());
}

// Blocks until the device is deleted (0), or failed or removed otherwise (1); SIGTERM/SIGINT end
// the watch with 0.
int watchUntilGone(Client& client, const std::string& name, std::atomic<int>& outcome) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  // The device may have failed between creation and the subscription.
  for (const auto& row : client.list()) {
    if (row.name == name && row.state == "failed") outcome = 1;
  }
  const timespec tick{0, 200'000'000};
  while (outcome < 0) {
    if (sigtimedwait(&stop, nullptr, &tick) > 0) return 0;
  }
  return outcome;
}

int create(Client& client, const Args& args) {
  const VerbArgs parsed = parseVerbArgs(args, {"--watch"}, {"--spec"}, true);
  const std::string& name = parsed.name;
  const bool watch = parsed.has("--watch");
  if (!parsed.values.contains("--spec")) throw UsageError("--spec FILE is required");
  const std::string spec = readSpec(parsed.values.at("--spec"));

  std::atomic<int> outcome = -1;
  if (watch) {
    client.watch(name, [&outcome](const std::string& kind, const std::string& detail) {
      // Any other reason is the queue daemon's end on a device without recovery.
      if (kind == "removed") outcome = detail == "deleted" ? 0 : 1;
      if (kind == "state" && detail == "failed") outcome = 1;
    });
  }
  const uint32_t id = client.create(name, spec);
  fmt::print("/dev/ublkb{}\n", id);
  std::fflush(stdout);
  if (!watch) return 0;
  waitForLink(name);
  sd_notifyf(0, "READY=1\nSTATUS=device %s live as /dev/ublkb%u", name.c_str(), id);
  const int rc = watchUntilGone(client, name, outcome);
  if (rc != 0) {
    fmt::print(stderr, "ublkctl create: device {} failed; see journalctl DEVICE={}\n", name, name);
    // The failed record is ours: clear it, so the unit can be started again.
    try {
      client.remove(name);
    } catch (const sdbus::Error& e) {
      if (ublkd::bus::kindOfBusError(e.getName()) != ublkd::ErrorKind::NotFound) {
        fmt::print(stderr, "ublkctl create: cannot remove the failed device {}: {}\n", name, e.getMessage());
      }
    }
  }
  return rc;
}

// systemd's own view: "stopping" once shutdown has begun.
bool systemIsStopping() {
  try {
    auto systemd = sdbus::createProxy("org.freedesktop.systemd1", "/org/freedesktop/systemd1");
    const std::string state =
        systemd->getProperty("SystemState").onInterface("org.freedesktop.systemd1.Manager").get<std::string>();
    return state == "stopping";
  } catch (const sdbus::Error&) {
    return false;
  }
}

int remove(Client& client, const Args& args) {
  const VerbArgs parsed = parseVerbArgs(args, {"--missing-ok", "--leave-busy-at-shutdown"}, {"--wait"}, true);
  const std::string& name = parsed.name;
  const bool missingOk = parsed.has("--missing-ok");
  const bool leaveBusyAtShutdown = parsed.has("--leave-busy-at-shutdown");
  int waitSeconds = 0;
  if (const auto wait = parsed.values.find("--wait"); wait != parsed.values.end()) {
    const std::string_view value = wait->second;
    if (!parsesWhole(value, waitSeconds) || waitSeconds < 0) {
      throw UsageError(fmt::format("--wait: '{}' is not a number of seconds", value));
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(waitSeconds);
  while (true) {
    try {
      client.remove(name);
      return 0;
    } catch (const sdbus::Error& e) {
      const auto kind = ublkd::bus::kindOfBusError(e.getName());
      if (missingOk && kind == ublkd::ErrorKind::NotFound) return 0;
      const bool busy = kind == ublkd::ErrorKind::Busy;
      if (busy && leaveBusyAtShutdown && systemIsStopping()) {
        // Filesystems on the device are unmounted after this unit stops (they are ordered before
        // local-fs.target, ublkd after it); the queue daemon serves until systemd's final kill.
        fmt::print(stderr, "ublkctl delete: {} is in use during shutdown; leaving it to its queue daemon\n", name);
        return 0;
      }
      if (!busy || std::chrono::steady_clock::now() >= deadline) throw;
      std::this_thread::sleep_for(200ms);
    }
  }
}

int restart(Client& client, const Args& args) {
  const VerbArgs parsed = parseVerbArgs(args, {}, {}, true);
  client.restart(parsed.name);
  return 0;
}

int resize(Client& client, const Args& args) {
  std::string name;
  std::string size;
  bool force = false;
  for (const auto arg : args) {
    if (arg == "--force") {
      force = true;
    } else if (arg.starts_with("-")) {
      throw UsageError(fmt::format("unexpected argument '{}'", arg));
    } else if (name.empty()) {
      name = arg;
    } else if (size.empty()) {
      size = arg;
    } else {
      throw UsageError(fmt::format("unexpected argument '{}'", arg));
    }
  }
  if (size.empty()) throw UsageError("NAME and SIZE are required");
  uint64_t bytes = 0;
  try {
    bytes = ublkd::parseSize(nlohmann::json(size), "SIZE");
  } catch (const ublkd::SpecError& e) {
    throw UsageError(fmt::format("SIZE: '{}': {}", size, e.reason()));
  }
  client.resize(name, bytes, force);
  return 0;
}

int status(Client& client, const Args& args) {
  const VerbArgs parsed = parseVerbArgs(args, {"--json"}, {}, true);
  const std::string& name = parsed.name;
  const bool json = parsed.has("--json");
  const auto rows = client.list();
  const DeviceRow* row = findRow(rows, name);
  if (row == nullptr)
    throw sdbus::Error(ublkd::bus::errorName(ublkd::ErrorKind::NotFound), "no device named '" + name + "'");
  nlohmann::json out{{"Name", row->name}, {"State", row->state}, {"Target", row->target}};
  for (const auto& [key, value] : client.deviceProperties(row->name)) {
    const std::string type = value.peekValueType();
    if (type == "s")
      out[key] = value.get<std::string>();
    else if (type == "u")
      out[key] = value.get<uint32_t>();
    else if (type == "t")
      out[key] = value.get<uint64_t>();
    else if (type == "q")
      out[key] = value.get<uint16_t>();
  }
  try {
    const auto details = client.details(row->name);
    out["Backing"] = details.at("backing").get<std::string>();
    out["Spec"] = details.at("spec").get<std::string>();
    if (const std::string error = details.at("error").get<std::string>(); !error.empty()) out["Error"] = error;
  } catch (const sdbus::Error& e) {
    // Another user's device: its spec and backing path are not ours to read.
    if (ublkd::bus::kindOfBusError(e.getName()) != ublkd::ErrorKind::PermissionDenied) throw;
  }
  if (json) {
    fmt::print("{}\n", out.dump());
    return 0;
  }
  for (const auto& [key, value] : out.items()) {
    fmt::print("{:>12}: {}\n", key, value.is_string() ? value.get<std::string>() : value.dump());
  }
  return 0;
}

double parseSeconds(std::string_view option, std::string_view value) {
  double seconds = 0;
  if (!parsesWhole(value, seconds) || !(seconds > 0) || seconds > 86400) {
    throw UsageError(fmt::format("{}: '{}' is not a number of seconds (above 0, at most 86400)", option, value));
  }
  return seconds;
}

// Waits `seconds`; false once SIGTERM or SIGINT came (blocked in main for the verbs that loop).
bool pause(double seconds) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  const auto whole = static_cast<time_t>(seconds);
  const timespec timeout{whole, static_cast<long>((seconds - static_cast<double>(whole)) * 1e9)};
  return sigtimedwait(&stop, nullptr, &timeout) < 0;
}

// The device's statistics, or nullopt while it has none (starting) or is gone.
std::optional<ublkd::bus::DeviceStatistics> statisticsOf(Client& client, const DeviceRow& row) {
  if (row.id == ublkd::kNoDeviceId) return std::nullopt;
  try {
    return ublkd::bus::parseStatistics(row.name, row.blockDevice, client.statistics(row.name));
  } catch (const sdbus::Error& e) {
    const auto kind = ublkd::bus::kindOfBusError(e.getName());
    // Busy: still starting. Unknown object: gone (or failed) since the list.
    if (kind == ublkd::ErrorKind::Busy || e.getName() == "org.freedesktop.DBus.Error.UnknownObject" ||
        e.getName() == "org.freedesktop.DBus.Error.UnknownMethod") {
      return std::nullopt;
    }
    throw;
  }
}

int prometheus(Client& client, const VerbArgs& parsed, std::optional<double> every) {
  const auto output = parsed.values.find("--output");
  do {
    std::vector<ublkd::bus::DeviceStatistics> devices;
    bool found = parsed.name.empty();
    for (const DeviceRow& row : client.list()) {
      if (!parsed.name.empty() && row.name != parsed.name) continue;
      found = true;
      if (auto stats = statisticsOf(client, row)) devices.push_back(std::move(*stats));
    }
    if (!found) {
      throw sdbus::Error(ublkd::bus::errorName(ublkd::ErrorKind::NotFound), "no device named '" + parsed.name + "'");
    }
    const std::string text = ublkd::bus::prometheusText(devices);
    if (output != parsed.values.end()) {
      ublkd::writeTextFileAtomically(std::string(output->second), text);
    } else {
      fmt::print("{}", text);
      std::fflush(stdout);
    }
  } while (every && pause(*every));
  return 0;
}

int stats(Client& client, const Args& args) {
  const VerbArgs parsed = parseVerbArgs(args, {"--json", "--prometheus"}, {"--watch", "--output"}, true, true);
  std::optional<double> every;
  if (const auto watch = parsed.values.find("--watch"); watch != parsed.values.end()) {
    every = parseSeconds("--watch", watch->second);
  }
  if (parsed.has("--prometheus")) {
    if (parsed.has("--json")) throw UsageError("--json and --prometheus are two formats: choose one");
    return prometheus(client, parsed, every);
  }
  if (parsed.values.contains("--output")) throw UsageError("--output is for --prometheus");
  if (parsed.name.empty()) throw UsageError("NAME is required");
  do {
    const auto rows = client.list();
    const DeviceRow* row = findRow(rows, parsed.name);
    if (row == nullptr) {
      throw sdbus::Error(ublkd::bus::errorName(ublkd::ErrorKind::NotFound), "no device named '" + parsed.name + "'");
    }
    if (row->id == ublkd::kNoDeviceId) {
      throw sdbus::Error(ublkd::bus::errorName(ublkd::ErrorKind::Busy),
                         fmt::format("device '{}' has no statistics: it is {}", row->name, row->state));
    }
    const auto s = ublkd::bus::parseStatistics(row->name, row->blockDevice, client.statistics(row->name));
    if (parsed.has("--json")) {
      fmt::print("{}\n", ublkd::bus::statisticsJson(s).dump());
    } else {
      fmt::print("{}{}", every ? "\n" : "", ublkd::bus::statisticsTable(s));
    }
    std::fflush(stdout);
  } while (every && pause(*every));
  return 0;
}

int top(Client& client, const Args& args) {
  const VerbArgs parsed = parseVerbArgs(args, {}, {"--interval", "--sort", "--iterations"});
  double every = 2;
  if (const auto v = parsed.values.find("--interval"); v != parsed.values.end())
    every = parseSeconds("--interval", v->second);
  auto order = ublkd::bus::TopOrder::Iops;
  if (const auto v = parsed.values.find("--sort"); v != parsed.values.end()) {
    const auto named = ublkd::bus::topOrderNamed(v->second);
    if (!named)
      throw UsageError(fmt::format("--sort: '{}' is not iops, bandwidth, latency, errors or name", v->second));
    order = *named;
  }
  long iterations = -1;
  if (const auto v = parsed.values.find("--iterations"); v != parsed.values.end()) {
    if (!parsesWhole(v->second, iterations) || iterations <= 0) {
      throw UsageError(fmt::format("--iterations: '{}' is not a positive number", v->second));
    }
  }
  // In place on a terminal (clear and home); one frame after another otherwise, like top -b.
  const bool terminal = ::isatty(STDOUT_FILENO) == 1;
  for (long frame = 0; iterations < 0 || frame < iterations; ++frame) {
    if (frame > 0 && !pause(every)) break;
    std::vector<ublkd::bus::TopRow> rows;
    for (const DeviceRow& row : client.list()) {
      rows.push_back({row.name, row.blockDevice, row.state, statisticsOf(client, row)});
    }
    const time_t now = std::time(nullptr);
    tm local{};
    localtime_r(&now, &local);
    char clock[16];
    std::strftime(clock, sizeof(clock), "%H:%M:%S", &local);
    fmt::print("{}ublkctl top - {}, {} device{}, every {} s\n{}", terminal ? "\033[H\033[2J" : (frame > 0 ? "\n" : ""),
               clock, rows.size(), rows.size() == 1 ? "" : "s", every, ublkd::bus::topTable(std::move(rows), order));
    std::fflush(stdout);
  }
  return 0;
}

int features(Client& client, const Args& args) {
  const bool json = parseVerbArgs(args, {"--json"}).has("--json");
  const auto names = client.kernelFeatures();
  const std::string version = client.version();
  if (json) {
    fmt::print("{}\n", nlohmann::json{{"version", version}, {"features", names}}.dump());
    return 0;
  }
  fmt::print("ublkd {}\nkernel ublk features:\n", version);
  for (const auto& n : names) fmt::print("  {}\n", n);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argv + 1, argv + argc);
  std::string address;
  if (const char* env = std::getenv("UBLKCTL_BUS_ADDRESS")) address = env;
  if (args.size() >= 2 && args[0] == "--address") {
    address = args[1];
    args.erase(args.begin(), args.begin() + 2);
  }
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    fmt::print(args.empty() ? stderr : stdout, "{}", kUsage);
    return args.empty() ? kUsageError : 0;
  }
  const std::string verb(args[0]);
  const Args rest(args.begin() + 1, args.end());
  const auto help = kVerbHelp.find(verb);
  if (help == kVerbHelp.end()) {
    fmt::print(stderr, "ublkctl: unknown verb '{}'\n{}", verb, kUsage);
    return kUsageError;
  }
  for (const auto arg : rest) {
    if (arg == "--help" || arg == "-h") {
      fmt::print("{}", help->second);
      return 0;
    }
  }
  const bool loops = verb == "top" || ((verb == "create" || verb == "stats") &&
                                       std::find(rest.begin(), rest.end(), "--watch") != rest.end());
  if (loops) {
    // Before the client's bus thread starts, so it inherits the mask and only the loop's
    // sigtimedwait takes SIGTERM/SIGINT (and the verb ends with 0).
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  }
  try {
    Client client(address);
    if (verb == "list") return list(client, rest);
    if (verb == "create") return create(client, rest);
    if (verb == "delete") return remove(client, rest);
    if (verb == "restart") return restart(client, rest);
    if (verb == "resize") return resize(client, rest);
    if (verb == "status") return status(client, rest);
    if (verb == "stats") return stats(client, rest);
    if (verb == "top") return top(client, rest);
    return features(client, rest);
  } catch (const UsageError& e) {
    fmt::print(stderr, "ublkctl {}: {}\n{}", verb, e.what(), help->second);
    return kUsageError;
  } catch (const sdbus::Error& e) {
    fmt::print(stderr, "ublkctl {}: {} ({})\n", verb, e.getMessage(), e.getName());
    if (const auto kind = ublkd::bus::kindOfBusError(e.getName())) return ublkd::bus::exitCode(*kind);
    const std::string_view name = e.getName();
    if (name == "org.freedesktop.DBus.Error.ServiceUnknown" || name == "org.freedesktop.DBus.Error.NoReply" ||
        name == "org.freedesktop.DBus.Error.FileNotFound" || name == "org.freedesktop.DBus.Error.NameHasNoOwner" ||
        name.starts_with("org.freedesktop.DBus.Error.Spawn") || name.starts_with("System.Error.")) {
      return kUnreachable;
    }
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "ublkctl {}: {}\n", verb, e.what());
    return 1;
  }
}
