// ublkd's command line: picks the verb and reports failures as "ublkd <verb>: <what>: <why>".
//   ublkd features [--json]      the kernel's ublk features, decoded
//   ublkd serve --spec FILE [--recover ID] [--status-fd FD] [--backing-fd FD] [--stats-fd FD] [--cookie N]
//                                serve one device in the foreground until SIGTERM/SIGINT
//   ublkd daemon [OPTIONS]       the service: org.ublk.Manager on the system bus
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "control_device.h"
#include "daemon.h"
#include "device_spec.h"
#include "feature_names.h"
#include "serve_status.h"
#include "server.h"
#include "service_error.h"
#include "text_file.h"

namespace {

constexpr std::string_view kUsage =
    "usage: ublkd features [--json]\n"
    "       ublkd serve --spec FILE [--recover ID] [--status-fd FD] [--backing-fd FD] [--stats-fd FD]\n"
    "                   [--cookie N]\n"
    "       ublkd daemon [--bus-address ADDRESS] [--config FILE] [--spec-dir DIR] [--run-dir DIR]\n"
    "  features   print the ublk features of the running kernel (GET_FEATURES)\n"
    "  serve      create the device FILE describes, print its /dev/ublkbN, serve it until\n"
    "             SIGTERM or SIGINT, then stop and delete it; SIGUSR2 hands it over (QUIESCE_DEV)\n"
    "             and exits, leaving it to be recovered. --recover ID serves existing device ID\n"
    "             again through user recovery, after its queue daemon died. With --status-fd, also\n"
    "             write 'ready ID' or 'failed KIND MESSAGE' to FD. With --backing-fd, a loop device\n"
    "             serves that open file instead of opening the spec's path. With --stats-fd, the\n"
    "             queue threads keep their statistics in FD, a file ublkd reads (GetStatistics).\n"
    "             --cookie N marks the device as ublkd's (ADD_DEV's ublksrv_flags); --recover refuses\n"
    "             a device without it. Exit codes: 0 stopped cleanly\n"
    "             or handed over, 1 failed, 2 invalid spec or usage, 3 kernel unsupported,\n"
    "             4 permission denied\n"
    "  daemon     the service: claims org.ublk.Manager on the system bus (or ADDRESS) and\n"
    "             runs each device's queue daemon as a supervised 'ublkd serve' child.\n"
    "             Defaults: --config /etc/ublk/ublkd.json --spec-dir /etc/ublk.d --run-dir /run/ublkd\n";

// Exit codes of `ublkd serve`, by kind of failure: scripts and the supervisor can tell them apart.
int exitCodeFor(ublkd::ErrorKind kind) {
  switch (kind) {
    case ublkd::ErrorKind::InvalidSpec:
      return 2;
    case ublkd::ErrorKind::KernelUnsupported:
      return 3;
    case ublkd::ErrorKind::PermissionDenied:
      return 4;
    default:
      return 1;
  }
}

// Writes the one status line to the supervisor's pipe, if there is one, and closes it.
class StatusFd {
 public:
  explicit StatusFd(int fd) : fd_(fd) {}
  StatusFd(const StatusFd&) = delete;
  StatusFd& operator=(const StatusFd&) = delete;
  ~StatusFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  // A supervisor that went away must not take the device with it: EPIPE is ignored.
  void send(const std::string& line) {
    if (fd_ >= 0) [[maybe_unused]]
      const ssize_t n = ::write(fd_, line.data(), line.size());
  }
  // The last line: ready or failed.
  void finish(const std::string& line) {
    send(line);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

template <typename Number>
bool parseNumber(std::string_view text, Number& number) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  return ec == std::errc() && end == text.data() + text.size();
}

int runServe(const std::vector<std::string_view>& args) {
  std::string specPath;
  int statusFd = -1;
  int backingFd = -1;
  int statsFd = -1;
  uint64_t cookie = 0;
  std::optional<uint32_t> recoverId;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--spec" && i + 1 < args.size()) {
      specPath = args[++i];
    } else if (args[i] == "--status-fd" && i + 1 < args.size()) {
      const std::string_view value = args[++i];
      if (!parseNumber(value, statusFd) || statusFd < 0) {
        fmt::print(stderr, "ublkd serve: --status-fd: '{}' is not a file descriptor number\n{}", value, kUsage);
        return 2;
      }
    } else if (args[i] == "--backing-fd" && i + 1 < args.size()) {
      const std::string_view value = args[++i];
      if (!parseNumber(value, backingFd) || backingFd < 0 || ::fcntl(backingFd, F_SETFD, FD_CLOEXEC) != 0) {
        fmt::print(stderr, "ublkd serve: --backing-fd: '{}' is not an open file descriptor\n{}", value, kUsage);
        return 2;
      }
    } else if (args[i] == "--stats-fd" && i + 1 < args.size()) {
      const std::string_view value = args[++i];
      if (!parseNumber(value, statsFd) || statsFd < 0 || ::fcntl(statsFd, F_SETFD, FD_CLOEXEC) != 0) {
        fmt::print(stderr, "ublkd serve: --stats-fd: '{}' is not an open file descriptor\n{}", value, kUsage);
        return 2;
      }
    } else if (args[i] == "--cookie" && i + 1 < args.size()) {
      const std::string_view value = args[++i];
      if (!parseNumber(value, cookie) || cookie == 0) {
        fmt::print(stderr, "ublkd serve: --cookie: '{}' is not a non-zero number\n{}", value, kUsage);
        return 2;
      }
    } else if (args[i] == "--recover" && i + 1 < args.size()) {
      const std::string_view value = args[++i];
      uint32_t id = 0;
      if (!parseNumber(value, id) || id == UINT32_MAX) {
        fmt::print(stderr, "ublkd serve: --recover: '{}' is not a device id\n{}", value, kUsage);
        return 2;
      }
      recoverId = id;
    } else {
      fmt::print(stderr, "ublkd serve: unexpected argument '{}'\n{}", args[i], kUsage);
      return 2;
    }
  }
  if (specPath.empty()) {
    fmt::print(stderr, "ublkd serve: --spec FILE is required\n{}", kUsage);
    return 2;
  }
  // The status pipe's reader may be gone (a restarted supervisor); that must not kill us.
  std::signal(SIGPIPE, SIG_IGN);
  StatusFd status(statusFd);
  try {
    ublkd::DeviceSpec spec = ublkd::parseDeviceSpec(ublkd::readTextFile(specPath));
    std::optional<ublkd::BackingStore> backing;
    if (backingFd >= 0) {
      if (spec.target != ublkd::TargetKind::Loop)
        throw ublkd::SpecError("/target", "only a loop device has a backing fd");
      backing = ublkd::BackingStore::fromFd(ublk::UniqueFd(backingFd), spec.path);
    }
    return ublkd::Server(std::move(spec),
                         {.onAdded = [&](uint32_t id) { status.send(ublkd::ServeStatus::added(id)); },
                          .onReady =
                              [&](uint32_t id, const ublkd::ServedGeometry& granted) {
                                status.finish(ublkd::ServeStatus::ready(id, granted));
                              }},
                         {.recoverId = recoverId,
                          .backing = std::move(backing),
                          .cookie = cookie,
                          .statsFd = ublk::UniqueFd(statsFd)})
        .run();
  } catch (const std::exception& e) {
    const ublkd::ErrorKind kind = ublkd::classify(e);
    if (kind == ublkd::ErrorKind::InvalidSpec) {
      fmt::print(stderr, "ublkd serve: invalid spec {}: {}\n", specPath, e.what());
    } else {
      fmt::print(stderr, "ublkd serve: {}\n", e.what());
    }
    status.finish(ublkd::ServeStatus::failed(kind, e.what()));
    return exitCodeFor(kind);
  }
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
    if (args[0] == "daemon") return ublkd::runDaemon({args.begin() + 1, args.end()}, kUsage);
    fmt::print(stderr, "ublkd: unknown verb '{}'\n{}", args[0], kUsage);
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "ublkd {}: {}\n", args[0], e.what());
    return 1;
  }
}
