// Polkit: asks polkit (org.freedesktop.PolicyKit1) whether the sender of a bus call may take an
// action, without blocking ublkd's event loop. Root never asks. An answer that is not a clear yes
// (a denial, a challenge this call cannot meet, polkit missing or silent) is PermissionDenied,
// naming the action and the reason.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <sdbus-c++/sdbus-c++.h>

#include "service_error.h"

namespace ublkd::bus {

// The one action of ublkd's policy (units/org.ublk.policy): create, delete, restart and resize.
inline constexpr const char* kManageDevicesAction = "org.ublk.manage-devices";

class Polkit {
 public:
  // nullptr: allowed; otherwise why not.
  using Done = std::function<void(const ServiceError* refusal)>;

  explicit Polkit(sdbus::IConnection& connection);

  // Whether bus name `sender` (effective uid `uid`) may do `action`; `what` says what in a refusal
  // ("create devices"), `details` reach polkit rules (action.lookup("device")). Calls `done` once,
  // on the event loop, within the call timeout.
  void check(const std::string& sender, uid_t uid, const std::string& action, const std::string& what,
             std::map<std::string, std::string> details, Done done);

 private:
  std::unique_ptr<sdbus::IProxy> authority_;
};

}  // namespace ublkd::bus
