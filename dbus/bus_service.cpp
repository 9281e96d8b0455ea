// BusService: method handlers, device objects and signals.
#include "bus_service.h"

#include <fmt/format.h>

#include "errors.h"
#include "log.h"

namespace ublkd::bus {
namespace {

// Runs a mutating method: a refusal becomes its named error (and a journal warning); any other
// exception becomes org.ublk.Error.Failed instead of unwinding through sd-bus.
template <typename Body>
void answeringErrors(std::string_view method, const std::string& name, Body&& body) {
  try {
    body();
  } catch (const ServiceError& e) {
    log::warning(fmt::format("{} '{}' refused: {}", method, name, e.what()), {{"DEVICE", name}});
    throw toBusError(e);
  } catch (const sdbus::Error&) {
    throw;
  } catch (const std::exception& e) {
    log::error(fmt::format("{} '{}' failed: {}", method, name, e.what()), {{"DEVICE", name}});
    throw toBusError(ServiceError(ErrorKind::Failed, e.what()));
  }
}

}  // namespace

DeviceObject::DeviceObject(sdbus::IConnection& connection, Manager& manager, DeviceView view)
    : AdaptorInterfaces(connection, devicePath(view.id)), manager_(manager), view_(std::move(view)) {
  registerAdaptor();
  emitInterfacesAddedSignal();
}

DeviceObject::~DeviceObject() {
  emitInterfacesRemovedSignal();
  unregisterAdaptor();
}

namespace {

using Dict = std::map<std::string, sdbus::Variant>;

std::vector<sdbus::Struct<uint64_t, uint64_t>> histogramValue(
    const std::vector<std::pair<uint64_t, uint64_t>>& buckets) {
  std::vector<sdbus::Struct<uint64_t, uint64_t>> value;
  for (const auto& [end, count] : buckets) value.emplace_back(end, count);
  return value;
}

// The a{sv} the XML documents (org.ublk.Device.xml, GetStatistics).
Dict statisticsValue(const stats::Report& r) {
  Dict d{{"since_usec", sdbus::Variant(r.sinceNs / 1000)},
         {"interval_sec", sdbus::Variant(r.interval)},
         {"queues", sdbus::Variant(r.queues)},
         {"in_flight", sdbus::Variant(r.inFlight)}};
  for (size_t i = 0; i < stats::kOpClasses; ++i) {
    const stats::OpReport& o = r.ops[i];
    const Dict op{{"ops", sdbus::Variant(o.ops)},
                  {"bytes", sdbus::Variant(o.bytes)},
                  {"errors", sdbus::Variant(o.errors)},
                  {"service_sum_nsec", sdbus::Variant(o.serviceNs)},
                  {"backend_sum_nsec", sdbus::Variant(o.backendNs)},
                  {"ops_per_sec", sdbus::Variant(o.opsPerSecond)},
                  {"bytes_per_sec", sdbus::Variant(o.bytesPerSecond)},
                  {"service_p50_usec", sdbus::Variant(o.service.p50)},
                  {"service_p99_usec", sdbus::Variant(o.service.p99)},
                  {"service_p999_usec", sdbus::Variant(o.service.p999)},
                  {"backend_p50_usec", sdbus::Variant(o.backend.p50)},
                  {"backend_p99_usec", sdbus::Variant(o.backend.p99)},
                  {"backend_p999_usec", sdbus::Variant(o.backend.p999)},
                  {"service_histogram", sdbus::Variant(histogramValue(o.serviceHistogram))},
                  {"backend_histogram", sdbus::Variant(histogramValue(o.backendHistogram))}};
    d.emplace(std::string(stats::kOpNames[i]), sdbus::Variant(op));
  }
  return d;
}

}  // namespace

std::map<std::string, sdbus::Variant> DeviceObject::GetStatistics() {
  try {
    return statisticsValue(manager_.statistics(view_.name));
  } catch (const ServiceError& e) {
    throw toBusError(e);
  } catch (const std::exception& e) {
    throw toBusError(ServiceError(ErrorKind::Failed, e.what()));
  }
}

void DeviceObject::update(const DeviceView& view) {
  view_ = view;
  getObject().emitPropertiesChangedSignal(
      org::ublk::Device_adaptor::INTERFACE_NAME,
      {"State", "Size", "Queues", "Depth", "BlockDevice", "CharDevice", "RestartCount", "LastExitReason", "DataPath"});
}

BusService::BusService(sdbus::IConnection& connection, Manager& manager, std::vector<std::string> kernelFeatures)
    : AdaptorInterfaces(connection, kManagerPath),
      connection_(connection),
      manager_(manager),
      kernelFeatures_(std::move(kernelFeatures)),
      root_(sdbus::createObject(connection, kRootPath)) {
  root_->addObjectManager();
  registerAdaptor();
  emitInterfacesAddedSignal();
  manager_.setListener(this);
  for (const DeviceView& view : manager_.list()) {
    if (view.state != DeviceState::Starting) deviceAdded(view);
  }
}

BusService::~BusService() {
  manager_.setListener(nullptr);
  devices_.clear();
  unregisterAdaptor();
}

void BusService::requireRoot(std::string_view what) {
  const sdbus::Message* call = getObject().getCurrentlyProcessedMessage();
  if (call == nullptr || call->getCredsEuid() != 0) {
    throw ServiceError(ErrorKind::PermissionDenied, fmt::format("only root may {}", what));
  }
}

void BusService::CreateDevice(sdbus::Result<uint32_t, sdbus::ObjectPath>&& result, std::string name,
                              std::string spec_json) {
  answeringErrors("CreateDevice", name, [&] {
    requireRoot("create devices");
    // Shared: the reply object is move-only and the Manager's callback must be copyable.
    auto reply = std::make_shared<sdbus::Result<uint32_t, sdbus::ObjectPath>>(std::move(result));
    manager_.create(name, spec_json, [reply](const DeviceView* created, const ServiceError* error) {
      if (error != nullptr) {
        reply->returnError(toBusError(*error));
      } else {
        reply->returnResults(created->id, sdbus::ObjectPath(devicePath(created->id)));
      }
    });
  });
}

namespace {

// The Manager's callback for a method without results; shared because the reply is move-only.
auto replyWhenDone(sdbus::Result<>&& result) {
  auto reply = std::make_shared<sdbus::Result<>>(std::move(result));
  return [reply](const ServiceError* error) {
    if (error != nullptr) {
      reply->returnError(toBusError(*error));
    } else {
      reply->returnResults();
    }
  };
}

}  // namespace

void BusService::DeleteDevice(sdbus::Result<>&& result, std::string name) {
  answeringErrors("DeleteDevice", name, [&] {
    requireRoot("delete devices");
    manager_.remove(name, replyWhenDone(std::move(result)));
  });
}

void BusService::RestartDevice(sdbus::Result<>&& result, std::string name) {
  answeringErrors("RestartDevice", name, [&] {
    requireRoot("restart devices");
    manager_.restart(name, replyWhenDone(std::move(result)));
  });
}

void BusService::ResizeDevice(sdbus::Result<>&& result, std::string name, uint64_t bytes,
                              std::map<std::string, sdbus::Variant> options) {
  answeringErrors("ResizeDevice", name, [&] {
    requireRoot("resize devices");
    bool force = false;
    for (const auto& [key, value] : options) {
      if (key != "force") {
        throw ServiceError(ErrorKind::InvalidSpec, fmt::format("options: unknown option '{}' (known: force)", key));
      }
      if (value.peekValueType() != "b") {
        throw ServiceError(ErrorKind::InvalidSpec,
                           fmt::format("options: 'force' is a boolean (b), not '{}'", value.peekValueType()));
      }
      force = value.get<bool>();
    }
    manager_.resize(name, bytes, force, replyWhenDone(std::move(result)));
  });
}

std::vector<DeviceListRow> BusService::ListDevices() {
  std::vector<DeviceListRow> rows;
  for (const DeviceView& d : manager_.list()) {
    rows.emplace_back(d.name, d.id, d.target, std::string(stateName(d.state)), d.sizeBytes, d.blockDevice());
  }
  return rows;
}

std::string BusService::Version() { return UBLKD_VERSION; }

void BusService::deviceAdded(const DeviceView& device) {
  devices_[device.id] = std::make_unique<DeviceObject>(connection_, manager_, device);
  emitDeviceAdded(device.name, sdbus::ObjectPath(devicePath(device.id)));
}

void BusService::deviceRemoved(const DeviceView& device, const std::string& reason) {
  const std::string path = device.id == kNoDeviceId ? std::string(kManagerPath) : devicePath(device.id);
  devices_.erase(device.id);
  emitDeviceRemoved(device.name, sdbus::ObjectPath(path), reason);
}

void BusService::deviceChanged(const DeviceView& device) {
  auto it = devices_.find(device.id);
  if (it != devices_.end()) it->second->update(device);
  emitDeviceStateChanged(device.name, sdbus::ObjectPath(devicePath(device.id)), std::string(stateName(device.state)));
  // A failed device's kernel id is free again; its object goes, the Manager keeps its name.
  if (device.state == DeviceState::Failed) devices_.erase(device.id);
}

}  // namespace ublkd::bus
