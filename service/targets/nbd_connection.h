// NbdConnection: one libnbd handle to an NBD export, configured from an NbdSpec (URI, TLS), that
// connects without blocking: its owner polls fd() for events() and calls notify(), on a queue's
// ring or, while a device is set up, in waitReady(). The destructor closes the handle.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "device_spec.h"

struct nbd_handle;

namespace ublkd {

// What the server advertises for the export, read once the connection is ready.
struct NbdExport {
  uint64_t sizeBytes = 0;
  bool readOnly = false;
  bool canFlush = false;
  bool canFua = false;
  bool canTrim = false;
  bool canZero = false;
  bool canMultiConn = false;
  uint32_t minBlock = 1;        // the server's block size constraints; 1 = none
  uint32_t preferredBlock = 0;  // 0 = not said
  uint32_t maxRequest = 0;      // bytes; 0 = not said
};

class NbdConnection {
 public:
  // Starts connecting to spec.uri. Throws SpecError("/uri") for a URI libnbd cannot use, and
  // ServiceError(BackendUnavailable) when the connection fails at once (no such socket, refused).
  NbdConnection(const NbdSpec& spec, const std::string& name);
  NbdConnection(const NbdConnection&) = delete;
  NbdConnection& operator=(const NbdConnection&) = delete;
  ~NbdConnection();

  nbd_handle* handle() const { return handle_.get(); }
  // The socket, and the poll events libnbd waits for on it (0: nothing to wait for).
  int fd() const;
  short events() const;
  // Runs libnbd's state machine after poll reported `revents`; false once the connection is dead.
  bool notify(short revents);
  bool ready() const;
  bool dead() const;
  // Blocks until ready; throws ServiceError (BackendUnavailable, or Timeout) with libnbd's reason.
  void waitReady(std::chrono::milliseconds timeout);
  NbdExport exportInfo() const;
  const std::string& uri() const { return uri_; }

 private:
  struct Close {
    void operator()(nbd_handle* h) const;
  };
  std::unique_ptr<nbd_handle, Close> handle_;
  std::string uri_;
};

// libnbd's last error on this thread, without its "nbd_xxx: " prefix.
std::string nbdError();

}  // namespace ublkd
