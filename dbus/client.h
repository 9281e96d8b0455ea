// Client: ublkctl's side of the bus. Calls org.ublk.Manager and reads org.ublk.Device objects;
// failures surface as sdbus::Error carrying the named error (dbus/errors.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <sdbus-c++/sdbus-c++.h>

namespace ublkd::bus {

struct DeviceRow {
  std::string name;
  uint32_t id;
  std::string target;
  std::string state;
  uint64_t sizeBytes;
  std::string blockDevice;
};

class Client {
 public:
  // An empty address is the system bus (which honours DBUS_SYSTEM_BUS_ADDRESS).
  explicit Client(const std::string& address);

  std::vector<DeviceRow> list();
  // Returns the new device's id.
  uint32_t create(const std::string& name, const std::string& specJson);
  void remove(const std::string& name);
  // Returns once a new queue daemon serves the device.
  void restart(const std::string& name);
  // Returns once the kernel has the new size; `force` allows a shrink.
  void resize(const std::string& name, uint64_t bytes, bool force);
  std::map<std::string, sdbus::Variant> deviceProperties(const std::string& name);
  // org.ublk.Device.GetStatistics and GetDetails of the named device (a{sv}: org.ublk.Device.xml).
  std::map<std::string, sdbus::Variant> statistics(const std::string& name);
  std::map<std::string, sdbus::Variant> details(const std::string& name);
  std::vector<std::string> kernelFeatures();
  std::string version();

  // Calls onEvent(kind, state_or_reason) for DeviceRemoved ("removed") and DeviceStateChanged
  // ("state") of the named device, on the client's bus thread. Call before create() to miss nothing.
  void watch(const std::string& name, std::function<void(const std::string& kind, const std::string& detail)> onEvent);

 private:
  // An org.ublk.Device method without arguments that returns a{sv}.
  std::map<std::string, sdbus::Variant> callDevice(const std::string& name, const std::string& method);

  std::unique_ptr<sdbus::IProxy> manager_;
  std::string address_;
  std::unique_ptr<sdbus::IConnection> deviceConnection_;  // no event loop: synchronous calls only
};

}  // namespace ublkd::bus
