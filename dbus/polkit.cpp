// Polkit: one asynchronous CheckAuthorization per call, subject "system-bus-name".
#include "polkit.h"

#include <chrono>

#include <fmt/format.h>

namespace ublkd::bus {
namespace {

using namespace std::chrono_literals;

constexpr const char* kAuthorityName = "org.freedesktop.PolicyKit1";
constexpr const char* kAuthorityPath = "/org/freedesktop/PolicyKit1/Authority";
constexpr const char* kAuthorityInterface = "org.freedesktop.PolicyKit1.Authority";
// Without interaction polkit answers from its rules at once; this bounds a hung polkitd.
constexpr auto kCheckTimeout = 10s;

using Subject = sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>>;
using AuthorizationResult = sdbus::Struct<bool, bool, std::map<std::string, std::string>>;

}  // namespace

Polkit::Polkit(sdbus::IConnection& connection)
    : authority_(sdbus::createProxy(connection, kAuthorityName, kAuthorityPath)) {}

void Polkit::check(const std::string& sender, uid_t uid, const std::string& action, const std::string& what,
                   std::map<std::string, std::string> details, Done done) {
  if (uid == 0) {
    done(nullptr);
    return;
  }
  const Subject subject{"system-bus-name", {{"name", sdbus::Variant(sender)}}};
  // Flags 0: no interaction. sdbus-c++ 1.2 does not show whether the caller allowed it, and an
  // operator's rule (or auth_admin_keep after an authentication elsewhere) is what grants here.
  const uint32_t flags = 0;
  auto refuse = [done, uid, action, what](const std::string& reason) {
    const ServiceError error(ErrorKind::PermissionDenied,
                             fmt::format("uid {} may not {}: polkit action {} {}", uid, what, action, reason));
    done(&error);
  };
  try {
    authority_->callMethodAsync("CheckAuthorization")
        .onInterface(kAuthorityInterface)
        .withTimeout(kCheckTimeout)
        .withArguments(subject, action, details, flags, std::string())
        .uponReplyInvoke([done, refuse](const sdbus::Error* error, const AuthorizationResult& result) {
          if (error != nullptr) {
            refuse(fmt::format("could not be checked: {} ({})", error->getMessage(), error->getName()));
          } else if (result.get<0>()) {
            done(nullptr);
          } else if (result.get<1>()) {
            refuse("needs an administrator's authentication, and ublkd asks without interaction");
          } else {
            refuse("is not granted");
          }
        });
  } catch (const sdbus::Error& e) {
    refuse(fmt::format("could not be checked: {}", e.getMessage()));
  }
}

}  // namespace ublkd::bus
