// ControlCommands: ublkd's kernel control commands, run from its event loop without ever waiting
// on the kernel. Each command answers exactly once: with the kernel's result, or with -ETIMEDOUT
// once its deadline passes (it is then abandoned; ControlDevice keeps its payload until the
// kernel hands it back). A STOP_DEV stuck behind a hung backing store therefore holds up nothing
// but the caller that asked for it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "control_device.h"
#include "event_loop.h"

namespace ublkd {

class ControlCommands {
 public:
  using Done = ublk::ControlDevice::Done;

  ControlCommands(EventLoop& loop, ublk::ControlDevice& control);
  ~ControlCommands();
  ControlCommands(const ControlCommands&) = delete;
  ControlCommands& operator=(const ControlCommands&) = delete;

  // `done` always runs later, from the loop, never inside run().
  void run(ublk::ControlCommand command, std::chrono::milliseconds deadline, Done done);

  // GET_DEV_INFO: the device, nullopt if there is none; `error` is set (command, device, errno
  // text) when the kernel could not say.
  using InfoDone = std::function<void(std::optional<ublk::abi::DevInfo> info, const std::string& error)>;
  void deviceInfo(uint32_t devId, InfoDone done);

 private:
  EventLoop& loop_;
  ublk::ControlDevice& control_;
};

// "STOP_DEV (device 3): Connection timed out": a command's failure as a message.
std::string commandError(const ublk::ControlCommand& command, int result, std::chrono::milliseconds deadline);

}  // namespace ublkd
