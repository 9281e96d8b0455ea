// Client: method calls with timeouts long enough for a device to come up under emulation.
#include "client.h"

#include <chrono>

#include "bus_names.h"

namespace ublkd::bus {
namespace {

using namespace std::chrono_literals;
constexpr auto kCallTimeout = 120s;  // CreateDevice waits for the queue daemon to go live

std::unique_ptr<sdbus::IConnection> connect(const std::string& address) {
  return address.empty() ? sdbus::createSystemBusConnection() : sdbus::createSessionBusConnectionWithAddress(address);
}

}  // namespace

Client::Client(const std::string& address)
    : manager_(sdbus::createProxy(connect(address), kBusName, kManagerPath)), address_(address) {}

std::vector<DeviceRow> Client::list() {
  std::vector<DeviceListRow> rows;
  manager_->callMethod("ListDevices").onInterface(kManagerInterface).withTimeout(kCallTimeout).storeResultsTo(rows);
  std::vector<DeviceRow> devices;
  for (const auto& r : rows) {
    devices.push_back({r.get<0>(), r.get<1>(), r.get<2>(), r.get<3>(), r.get<4>(), r.get<5>()});
  }
  return devices;
}

uint32_t Client::create(const std::string& name, const std::string& specJson) {
  uint32_t id = 0;
  sdbus::ObjectPath path;
  manager_->callMethod("CreateDevice")
      .onInterface(kManagerInterface)
      .withTimeout(kCallTimeout)
      .withArguments(name, specJson)
      .storeResultsTo(id, path);
  return id;
}

void Client::remove(const std::string& name) {
  manager_->callMethod("DeleteDevice").onInterface(kManagerInterface).withTimeout(kCallTimeout).withArguments(name);
}

void Client::restart(const std::string& name) {
  manager_->callMethod("RestartDevice").onInterface(kManagerInterface).withTimeout(kCallTimeout).withArguments(name);
}

void Client::resize(const std::string& name, uint64_t bytes, bool force) {
  std::map<std::string, sdbus::Variant> options;
  if (force) options.emplace("force", sdbus::Variant(true));
  manager_->callMethod("ResizeDevice")
      .onInterface(kManagerInterface)
      .withTimeout(kCallTimeout)
      .withArguments(name, bytes, options);
}

std::map<std::string, sdbus::Variant> Client::deviceProperties(const std::string& name) {
  auto device = sdbus::createProxy(connect(address_), kBusName, devicePath(name));
  std::map<std::string, sdbus::Variant> properties;
  device->callMethod("GetAll")
      .onInterface("org.freedesktop.DBus.Properties")
      .withArguments(std::string(kDeviceInterface))
      .storeResultsTo(properties);
  return properties;
}

std::map<std::string, sdbus::Variant> Client::statistics(const std::string& name) {
  return callDevice(name, "GetStatistics");
}

std::map<std::string, sdbus::Variant> Client::details(const std::string& name) {
  return callDevice(name, "GetDetails");
}

std::map<std::string, sdbus::Variant> Client::callDevice(const std::string& name, const std::string& method) {
  // One connection for every call: `ublkctl top` asks for each device every refresh.
  if (!deviceConnection_) deviceConnection_ = connect(address_);
  auto device = sdbus::createProxy(*deviceConnection_, kBusName, devicePath(name));
  std::map<std::string, sdbus::Variant> values;
  device->callMethod(method).onInterface(kDeviceInterface).storeResultsTo(values);
  return values;
}

std::vector<std::string> Client::kernelFeatures() {
  return manager_->getProperty("KernelFeatures").onInterface(kManagerInterface).get<std::vector<std::string>>();
}

std::string Client::version() {
  return manager_->getProperty("Version").onInterface(kManagerInterface).get<std::string>();
}

void Client::watch(const std::string& name,
                   std::function<void(const std::string& kind, const std::string& detail)> onEvent) {
  manager_->uponSignal("DeviceRemoved")
      .onInterface(kManagerInterface)
      .call([name, onEvent](const std::string& device, const sdbus::ObjectPath&, const std::string& reason) {
        if (device == name) onEvent("removed", reason);
      });
  manager_->uponSignal("DeviceStateChanged")
      .onInterface(kManagerInterface)
      .call([name, onEvent](const std::string& device, const sdbus::ObjectPath&, const std::string& state) {
        if (device == name) onEvent("state", state);
      });
  manager_->finishRegistration();
}

}  // namespace ublkd::bus
