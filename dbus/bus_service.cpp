// BusService: method handlers, device objects and signals.
#include "bus_service.h"

#include <cctype>

#include <fmt/format.h>

#include "errors.h"
#include "log.h"

namespace ublkd::bus {
namespace {

// What a method answers for an exception: a refusal becomes its named error (and a journal
// warning); anything else becomes org.ublk.Error.Failed instead of unwinding through sd-bus.
sdbus::Error busErrorOf(std::string_view method, const std::string& name, std::exception_ptr failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const ServiceError& e) {
    log::warning(fmt::format("{} '{}' refused: {}", method, name, e.what()), {{"DEVICE", name}});
    return toBusError(e);
  } catch (const sdbus::Error& e) {
    return e;
  } catch (const std::exception& e) {
    log::error(fmt::format("{} '{}' failed: {}", method, name, e.what()), {{"DEVICE", name}});
    return toBusError(ServiceError(ErrorKind::Failed, e.what()));
  }
}

}  // namespace

DeviceObject::DeviceObject(sdbus::IConnection& connection, Manager& manager, DeviceView view)
    : AdaptorInterfaces(connection, devicePath(view.name)), manager_(manager), view_(std::move(view)) {
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

std::map<std::string, sdbus::Variant> DeviceObject::GetDetails() {
  const sdbus::Message* call = getObject().getCurrentlyProcessedMessage();
  const uid_t caller = call != nullptr ? call->getCredsEuid() : static_cast<uid_t>(-1);
  if (caller != 0 && caller != view_.owner) {
    throw toBusError(ServiceError(
        ErrorKind::PermissionDenied,
        fmt::format("uid {} may not read the details of '{}': only root and its creator may", caller, view_.name)));
  }
  return {{"spec", sdbus::Variant(view_.specJson)},
          {"backing", sdbus::Variant(view_.backing)},
          {"error", sdbus::Variant(view_.state == DeviceState::Failed ? view_.lastError : std::string())}};
}

void DeviceObject::update(const DeviceView& view) {
  view_ = view;
  getObject().emitPropertiesChangedSignal(org::ublk::Device_adaptor::INTERFACE_NAME,
                                          {"Id", "State", "Size", "Queues", "Depth", "BlockDevice", "CharDevice",
                                           "RestartCount", "LastExitReason", "DataPath"});
}

BusService::BusService(sdbus::IConnection& connection, Manager& manager, std::vector<std::string> kernelFeatures)
    : AdaptorInterfaces(connection, kManagerPath),
      connection_(connection),
      manager_(manager),
      kernelFeatures_(std::move(kernelFeatures)),
      root_(sdbus::createObject(connection, kRootPath)),
      polkit_(connection) {
  root_->addObjectManager();
  registerAdaptor();
  emitInterfacesAddedSignal();
  manager_.setListener(this);
  for (const DeviceView& view : manager_.list()) deviceAdded(view);
}

BusService::~BusService() {
  manager_.setListener(nullptr);
  devices_.clear();
  unregisterAdaptor();
}

template <typename Reply, typename Body>
void BusService::whenAuthorized(std::string_view verb, const std::string& name, Reply&& result, Body&& body) {
  // Shared: the reply object is move-only and the callbacks must be copyable.
  auto reply = std::make_shared<std::decay_t<Reply>>(std::move(result));
  const sdbus::Message* call = getObject().getCurrentlyProcessedMessage();
  std::string method = fmt::format("{}Device", verb);  // for the journal: "CreateDevice"
  method[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(method[0])));
  try {
    if (call == nullptr) throw ServiceError(ErrorKind::PermissionDenied, "the caller is unknown");
    const uid_t caller = call->getCredsEuid();  // a round trip to the bus daemon: once per call
    polkit_.check(call->getSender(), caller, kManageDevicesAction, fmt::format("{} devices", verb),
                  {{"device", name}, {"verb", std::string(verb)}},
                  [reply, method, name, caller, body = std::forward<Body>(body)](const ServiceError* refusal) {
                    try {
                      if (refusal != nullptr) throw *refusal;
                      body(reply, caller);
                    } catch (...) {
                      reply->returnError(busErrorOf(method, name, std::current_exception()));
                    }
                  });
  } catch (...) {
    reply->returnError(busErrorOf(method, name, std::current_exception()));
  }
}

void BusService::CreateDevice(sdbus::Result<uint32_t, sdbus::ObjectPath>&& result, std::string name,
                              std::string spec_json) {
  whenAuthorized(
      "create", name, std::move(result),
      [this, name, spec_json](const std::shared_ptr<sdbus::Result<uint32_t, sdbus::ObjectPath>>& reply, uid_t owner) {
        manager_.create(name, spec_json, owner, [reply](const DeviceView* created, const ServiceError* error) {
          if (error != nullptr) {
            reply->returnError(toBusError(*error));
          } else {
            reply->returnResults(created->id, sdbus::ObjectPath(devicePath(created->name)));
          }
        });
      });
}

namespace {

// The Manager's callback for a method without results.
auto replyWhenDone(std::shared_ptr<sdbus::Result<>> reply) {
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
  whenAuthorized("delete", name, std::move(result), [this, name](const std::shared_ptr<sdbus::Result<>>& reply, uid_t) {
    manager_.remove(name, replyWhenDone(reply));
  });
}

void BusService::RestartDevice(sdbus::Result<>&& result, std::string name) {
  whenAuthorized("restart", name, std::move(result),
                 [this, name](const std::shared_ptr<sdbus::Result<>>& reply, uid_t) {
                   manager_.restart(name, replyWhenDone(reply));
                 });
}

void BusService::ResizeDevice(sdbus::Result<>&& result, std::string name, uint64_t bytes,
                              std::map<std::string, sdbus::Variant> options) {
  whenAuthorized(
      "resize", name, std::move(result),
      [this, name, bytes, options](const std::shared_ptr<sdbus::Result<>>& reply, uid_t) {
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
        manager_.resize(name, bytes, force, replyWhenDone(reply));
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

// The Manager's listener: a bus that cannot take a signal must not break the Manager's work.
template <typename Body>
void BusService::announcing(const DeviceView& device, std::string_view what, Body&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    log::error(fmt::format("device {}: cannot announce {} on the bus: {}", device.name, what, e.what()),
               {{"DEVICE", device.name}});
  }
}

void BusService::deviceAdded(const DeviceView& device) {
  announcing(device, "its object", [&] {
    devices_.erase(device.name);  // its object goes before another takes the path
    devices_[device.name] = std::make_unique<DeviceObject>(connection_, manager_, device);
    emitDeviceAdded(device.name, sdbus::ObjectPath(devicePath(device.name)));
  });
}

void BusService::deviceRemoved(const DeviceView& device, const std::string& reason) {
  announcing(device, "its removal", [&] {
    devices_.erase(device.name);
    emitDeviceRemoved(device.name, sdbus::ObjectPath(devicePath(device.name)), reason);
  });
}

void BusService::deviceChanged(const DeviceView& device) {
  auto it = devices_.find(device.name);
  if (it == devices_.end()) {
    deviceAdded(device);
  } else {
    announcing(device, "a change", [&] { it->second->update(device); });
  }
  announcing(device, "its state", [&] {
    emitDeviceStateChanged(device.name, sdbus::ObjectPath(devicePath(device.name)),
                           std::string(stateName(device.state)));
  });
}

}  // namespace ublkd::bus
