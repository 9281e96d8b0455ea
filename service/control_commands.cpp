// ControlCommands: deadlines on the event loop around ControlDevice's asynchronous commands.
#include "control_commands.h"

#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>

namespace ublkd {

// How long GET_DEV_INFO may take: it copies what the kernel keeps and takes no device lock.
constexpr std::chrono::milliseconds kInfoDeadline{5000};

ControlCommands::ControlCommands(EventLoop& loop, ublk::ControlDevice& control) : loop_(loop), control_(control) {
  loop_.watch(control_.completionFd(), POLLIN, [this] { control_.reapCompletions(); });
}

ControlCommands::~ControlCommands() { loop_.unwatch(control_.completionFd()); }

void ControlCommands::run(ublk::ControlCommand command, std::chrono::milliseconds deadline, Done done) {
  // Shared by the completion and the deadline: whichever comes first answers.
  struct Flight {
    Done done;
    uint64_t tag = 0;
    EventLoop::TimerId timer = 0;
  };
  auto flight = std::make_shared<Flight>();
  flight->done = std::move(done);
  try {
    flight->tag = control_.submit(std::move(command), [this, flight](int result, std::span<const std::byte> payload) {
      loop_.cancel(flight->timer);
      if (auto answer = std::exchange(flight->done, nullptr)) answer(result, payload);
    });
  } catch (const std::system_error& e) {
    const int result = -e.code().value();
    loop_.after(std::chrono::milliseconds(0), [flight, result] {
      if (auto answer = std::exchange(flight->done, nullptr)) answer(result, {});
    });
    return;
  }
  flight->timer = loop_.after(deadline, [this, flight] {
    control_.abandon(flight->tag);
    if (auto answer = std::exchange(flight->done, nullptr)) answer(-ETIMEDOUT, {});
  });
}

void ControlCommands::deviceInfo(uint32_t devId, InfoDone done) {
  run(ublk::ControlCommand::getDeviceInfo(devId), kInfoDeadline,
      [done = std::move(done), devId](int result, std::span<const std::byte> payload) {
        if (result >= 0) return done(ublk::payloadAs<ublk::abi::DevInfo>(payload), "");
        if (result == -ENODEV || result == -ENOENT) return done(std::nullopt, "");
        done(std::nullopt, commandError(ublk::ControlCommand::getDeviceInfo(devId), result, kInfoDeadline));
      });
}

std::string commandError(const ublk::ControlCommand& command, int result, std::chrono::milliseconds deadline) {
  const std::string device =
      command.header.dev_id == UINT32_MAX ? "no device" : fmt::format("device {}", command.header.dev_id);
  if (result == -ETIMEDOUT) {
    return fmt::format("{} ({}): no answer within {} ms; the kernel may still carry it out", command.name, device,
                       deadline.count());
  }
  return fmt::format("{} ({}): {}", command.name, device, std::strerror(-result));
}

}  // namespace ublkd
