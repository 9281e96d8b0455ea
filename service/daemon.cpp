// runDaemon: option parsing, the bus connection on the event loop, signals, sd_notify, autostart.
#include "daemon.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <sdbus-c++/sdbus-c++.h>

#include "bus_service.h"
#include "control_device.h"
#include "daemon_config.h"
#include "device_spec.h"
#include "event_loop.h"
#include "feature_names.h"
#include "log.h"
#include "manager.h"
#include "text_file.h"
#include "throw_errno.h"
#include "unique_fd.h"

namespace ublkd {
namespace {

struct DaemonOptions {
  std::string busAddress;  // empty: the system bus
  std::filesystem::path config = "/etc/ublk/ublkd.json";
  std::filesystem::path specDir = "/etc/ublk.d";
  std::filesystem::path runDir = "/run/ublkd";
};

// Brings up every spec file; a bad one is logged with its file and never stops the others.
void autostart(Manager& manager, const std::filesystem::path& specDir) {
  for (const auto& [name, file] : listSpecFiles(specDir)) {
    try {
      manager.create(name, readTextFile(file), 0, [name, file](const DeviceView*, const ServiceError* error) {
        if (error != nullptr) {
          log::error(fmt::format("{}: device {} did not start: {}", file.string(), name, error->what()),
                     {{"DEVICE", name}, {"CONFIG_FILE", file.string()}});
        }
      });
    } catch (const std::exception& e) {
      log::error(fmt::format("{}: {}", file.string(), e.what()), {{"DEVICE", name}, {"CONFIG_FILE", file.string()}});
    }
  }
}

int serve(const DaemonOptions& options) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  const ublk::UniqueFd signalFd(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signalFd) ublk::throwErrno(errno, "signalfd");
  ::signal(SIGPIPE, SIG_IGN);

  const DaemonConfig config = loadDaemonConfig(options.config);
  // Blocking use only before the bus is served (features, adoption), with a short deadline; the
  // Manager runs everything after that asynchronously.
  ublk::ControlDevice control({.path = "/dev/ublk-control", .deadline = std::chrono::seconds(5), .maxRetries = 50});
  uint64_t features = 0;
  try {
    features = control.getFeatures();
  } catch (const std::system_error&) {
    // Before 6.5 there is no GET_FEATURES; each device's ADD_DEV still negotiates its flags.
  }

  EventLoop loop;
  Manager manager(
      loop, control,
      {.runDir = options.runDir,
       .serveBinary = std::filesystem::read_symlink("/proc/self/exe").string(),
       .kernelFeatures = features,
       .crash = {.burst = config.crashLoopDeaths, .within = std::chrono::seconds(config.crashLoopWithinSeconds)}});
  std::unique_ptr<sdbus::IConnection> connection =
      options.busAddress.empty() ? sdbus::createSystemBusConnection()
                                 : sdbus::createSessionBusConnectionWithAddress(options.busAddress);
  bus::BusService service(*connection, manager, ublk::featureNames(features));
  manager.adoptPrevious();

  auto drainBus = [&] {
    while (connection->processPendingRequest()) {
    }
  };
  int exitCode = 0;
  loop.setExternal({.prepare =
                        [&] {
                          const auto poll = connection->getEventLoopPollData();
                          std::optional<EventLoop::Clock::duration> sleep;
                          if (const auto relative = poll.getRelativeTimeout()) sleep = *relative;
                          return std::pair{pollfd{poll.fd, poll.events, 0}, sleep};
                        },
                    .dispatch =
                        [&] {
                          try {
                            drainBus();
                          } catch (const sdbus::Error& e) {
                            log::error(fmt::format("lost the bus connection: {}", e.what()));
                            exitCode = 1;
                            loop.stop();
                          }
                        }});
  loop.watch(signalFd.get(), POLLIN, [&] {
    signalfd_siginfo info{};
    if (::read(signalFd.get(), &info, sizeof(info)) == sizeof(info)) {
      log::info(fmt::format("SIG{} received; leaving devices served and exiting", sigabbrev_np(info.ssi_signo)));
      loop.stop();
    }
  });

  connection->requestName(bus::kBusName);
  if (config.autostart) autostart(manager, options.specDir);
  sd_notify(0, "READY=1\nSTATUS=serving ublk devices on the bus as org.ublk.Manager");
  log::info(fmt::format("ready: org.ublk.Manager, kernel ublk features {:#x}", features));

  loop.run();

  sd_notify(0, "STOPPING=1\nSTATUS=exiting; devices stay served by their queue daemons");
  manager.detachAll();
  drainBus();
  return exitCode;
}

}  // namespace

int runDaemon(const std::vector<std::string_view>& args, std::string_view usage) {
  DaemonOptions options;
  if (const char* address = std::getenv("UBLKD_BUS_ADDRESS")) options.busAddress = address;
  for (size_t i = 0; i < args.size(); ++i) {
    const bool hasValue = i + 1 < args.size();
    if (args[i] == "--bus-address" && hasValue) {
      options.busAddress = args[++i];
    } else if (args[i] == "--config" && hasValue) {
      options.config = args[++i];
    } else if (args[i] == "--spec-dir" && hasValue) {
      options.specDir = args[++i];
    } else if (args[i] == "--run-dir" && hasValue) {
      options.runDir = args[++i];
    } else {
      fmt::print(stderr, "ublkd daemon: unexpected argument '{}'\n{}", args[i], usage);
      return 2;
    }
  }
  try {
    return serve(options);
  } catch (const SpecError& e) {
    log::error(fmt::format("{}: {}", options.config.string(), e.what()), {{"CONFIG_FILE", options.config.string()}});
    sd_notifyf(0, "STATUS=invalid configuration %s", options.config.c_str());
    return 2;
  } catch (const std::exception& e) {
    log::error(fmt::format("cannot serve: {}", e.what()));
    return 1;
  }
}

}  // namespace ublkd
