// BusService: ublkd on D-Bus. /org/ublk carries the ObjectManager; /org/ublk/Manager implements
// org.ublk.Manager over the Manager; every device the Manager knows, in any state, is
// /org/ublk/Device/<escaped name> implementing org.ublk.Device. Mutating calls need root or
// polkit's yes (org.ublk.manage-devices); a device's spec and backing path are for root and its
// creator. Runs on the daemon's event loop thread, like the Manager it listens to.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <sdbus-c++/sdbus-c++.h>

#include "bus_names.h"
#include "manager.h"
#include "org.ublk.Device.adaptor.h"
#include "org.ublk.Manager.adaptor.h"
#include "polkit.h"

namespace ublkd::bus {

class DeviceObject final : public sdbus::AdaptorInterfaces<org::ublk::Device_adaptor, sdbus::ManagedObject_adaptor> {
 public:
  DeviceObject(sdbus::IConnection& connection, Manager& manager, DeviceView view);
  ~DeviceObject();
  void update(const DeviceView& view);

 private:
  std::string Name() override { return view_.name; }
  uint32_t Id() override { return view_.id; }
  std::string Target() override { return view_.target; }
  std::string State() override { return std::string(stateName(view_.state)); }
  uint64_t Size() override { return view_.sizeBytes; }
  uint16_t Queues() override { return view_.queues; }
  uint16_t Depth() override { return view_.depth; }
  std::string BlockDevice() override { return view_.blockDevice(); }
  std::string CharDevice() override { return view_.charDevice(); }
  uint32_t RestartCount() override { return view_.restartCount; }
  std::string LastExitReason() override { return view_.lastExitReason; }
  std::string DataPath() override { return view_.dataPath; }
  std::map<std::string, sdbus::Variant> GetStatistics() override;
  std::map<std::string, sdbus::Variant> GetDetails() override;

  Manager& manager_;
  DeviceView view_;
};

class BusService final : public sdbus::AdaptorInterfaces<org::ublk::Manager_adaptor, sdbus::ManagedObject_adaptor>,
                         public Manager::Listener {
 public:
  BusService(sdbus::IConnection& connection, Manager& manager, std::vector<std::string> kernelFeatures);
  ~BusService();

  void deviceAdded(const DeviceView& device) override;
  void deviceRemoved(const DeviceView& device, const std::string& reason) override;
  void deviceChanged(const DeviceView& device) override;

 private:
  void CreateDevice(sdbus::Result<uint32_t, sdbus::ObjectPath>&& result, std::string name,
                    std::string spec_json) override;
  void DeleteDevice(sdbus::Result<>&& result, std::string name) override;
  void RestartDevice(sdbus::Result<>&& result, std::string name) override;
  void ResizeDevice(sdbus::Result<>&& result, std::string name, uint64_t bytes,
                    std::map<std::string, sdbus::Variant> options) override;
  std::vector<DeviceListRow> ListDevices() override;
  std::string Version() override;
  std::vector<std::string> KernelFeatures() override { return kernelFeatures_; }

  // Runs body(reply, caller's uid) once polkit lets the caller of the method being handled manage
  // devices (root always may); a refusal, or what body throws, answers the call as a named error.
  template <typename Reply, typename Body>
  void whenAuthorized(std::string_view verb, const std::string& name, Reply&& result, Body&& body);

  // Runs body, logging (not throwing) what fails: the Manager's work goes on without the bus.
  template <typename Body>
  void announcing(const DeviceView& device, std::string_view what, Body&& body);

  sdbus::IConnection& connection_;
  Manager& manager_;
  std::vector<std::string> kernelFeatures_;
  std::unique_ptr<sdbus::IObject> root_;                          // the ObjectManager
  std::map<std::string, std::unique_ptr<DeviceObject>> devices_;  // by name
  Polkit polkit_;  // last: its pending checks are cancelled before anything they use goes
};

}  // namespace ublkd::bus
