// NbdConnection: libnbd's handle set up the way ublkd uses it (TCP and Unix sockets only, TLS as
// the spec says), its non-blocking connect, and the export's flags.
#include "nbd_connection.h"

#include <libnbd.h>
#include <poll.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "service_error.h"

namespace ublkd {
namespace {

[[noreturn]] void unavailable(const std::string& uri, const std::string& what) {
  throw ServiceError(ErrorKind::BackendUnavailable, fmt::format("/uri: cannot connect to {}: {}", uri, what));
}

void check(int ret, const char* what) {
  if (ret == -1) throw std::runtime_error(fmt::format("libnbd {}: {}", what, nbdError()));
}

}  // namespace

std::string nbdError() {
  const char* text = nbd_get_error();
  if (text == nullptr) return "the connection was closed";
  std::string_view error(text);
  // "nbd_aio_connect_uri: connect: Connection refused" -> "connect: Connection refused"
  if (error.starts_with("nbd_") && error.find(": ") != std::string_view::npos)
    error.remove_prefix(error.find(": ") + 2);
  return std::string(error);
}

void NbdConnection::Close::operator()(nbd_handle* h) const { nbd_close(h); }

NbdConnection::NbdConnection(const NbdSpec& spec, const std::string& name) : handle_(nbd_create()), uri_(spec.uri) {
  nbd_handle* h = handle_.get();
  if (h == nullptr) throw std::runtime_error(fmt::format("libnbd nbd_create: {}", nbdError()));
  check(nbd_set_handle_name(h, name.c_str()), "set_handle_name");
  // No vsock, and no URI that names local files other than the socket.
  check(nbd_set_uri_allow_transports(h, LIBNBD_ALLOW_TRANSPORT_TCP | LIBNBD_ALLOW_TRANSPORT_UNIX),
        "set_uri_allow_transports");
  check(nbd_set_uri_allow_local_file(h, false), "set_uri_allow_local_file");
  if (!spec.tlsCertificates.empty())
    check(nbd_set_tls_certificates(h, spec.tlsCertificates.c_str()), "set_tls_certificates");
  if (!spec.tlsPskFile.empty()) check(nbd_set_tls_psk_file(h, spec.tlsPskFile.c_str()), "set_tls_psk_file");
  if (!spec.tlsUsername.empty()) check(nbd_set_tls_username(h, spec.tlsUsername.c_str()), "set_tls_username");
  check(nbd_set_tls_verify_peer(h, spec.tlsVerifyPeer), "set_tls_verify_peer");
  if (nbd_aio_connect_uri(h, spec.uri.c_str()) == -1) {
    // A URI libnbd cannot parse or use is the spec's fault; anything else is the server's.
    if (nbd_get_errno() == EINVAL || nbd_get_errno() == ENOTSUP) throw SpecError("/uri", nbdError());
    unavailable(uri_, nbdError());
  }
}

NbdConnection::~NbdConnection() = default;

int NbdConnection::fd() const { return nbd_aio_get_fd(handle_.get()); }

short NbdConnection::events() const {
  const unsigned direction = nbd_aio_get_direction(handle_.get());
  short events = 0;
  if ((direction & LIBNBD_AIO_DIRECTION_READ) != 0) events |= POLLIN;
  if ((direction & LIBNBD_AIO_DIRECTION_WRITE) != 0) events |= POLLOUT;
  return events;
}

bool NbdConnection::notify(short revents) {
  nbd_handle* h = handle_.get();
  // The direction may have changed since the poll was armed: ask again before each notify.
  const unsigned direction = nbd_aio_get_direction(h);
  if ((direction & LIBNBD_AIO_DIRECTION_READ) != 0 && (revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
    if (nbd_aio_notify_read(h) == -1) return false;
  }
  if ((nbd_aio_get_direction(h) & LIBNBD_AIO_DIRECTION_WRITE) != 0 && (revents & (POLLOUT | POLLHUP | POLLERR)) != 0) {
    if (nbd_aio_notify_write(h) == -1) return false;
  }
  return !dead();
}

bool NbdConnection::ready() const {
  return nbd_aio_is_ready(handle_.get()) == 1 || nbd_aio_is_processing(handle_.get()) == 1;
}

bool NbdConnection::dead() const {
  return nbd_aio_is_dead(handle_.get()) == 1 || nbd_aio_is_closed(handle_.get()) == 1;
}

void NbdConnection::waitReady(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!ready()) {
    if (dead()) unavailable(uri_, nbdError());
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      throw ServiceError(ErrorKind::Timeout,
                         fmt::format("/uri: {} did not complete the NBD handshake within {} s", uri_,
                                     std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
    }
    pollfd p{.fd = fd(), .events = events(), .revents = 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll on the NBD socket");
    if (n > 0 && !notify(p.revents)) unavailable(uri_, nbdError());
  }
}

NbdExport NbdConnection::exportInfo() const {
  nbd_handle* h = handle_.get();
  const auto flag = [&](int value, const char* what) {
    if (value == -1) throw std::runtime_error(fmt::format("libnbd {} of {}: {}", what, uri_, nbdError()));
    return value == 1;
  };
  const auto blockSize = [&](int which) {
    const int64_t value = nbd_get_block_size(h, which);
    return value > 0 ? static_cast<uint32_t>(value) : 0u;
  };
  const int64_t size = nbd_get_size(h);
  if (size < 0) throw std::runtime_error(fmt::format("libnbd get_size of {}: {}", uri_, nbdError()));
  return {.sizeBytes = static_cast<uint64_t>(size),
          .readOnly = flag(nbd_is_read_only(h), "is_read_only"),
          .canFlush = flag(nbd_can_flush(h), "can_flush"),
          .canFua = flag(nbd_can_fua(h), "can_fua"),
          .canTrim = flag(nbd_can_trim(h), "can_trim"),
          .canZero = flag(nbd_can_zero(h), "can_zero"),
          .canMultiConn = flag(nbd_can_multi_conn(h), "can_multi_conn"),
          .minBlock = std::max(blockSize(LIBNBD_SIZE_MINIMUM), 1u),
          .preferredBlock = blockSize(LIBNBD_SIZE_PREFERRED),
          .maxRequest = blockSize(LIBNBD_SIZE_MAXIMUM)};
}

}  // namespace ublkd
