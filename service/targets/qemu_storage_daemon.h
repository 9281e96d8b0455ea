// QemuStorageDaemon: the qemu-storage-daemon that opens a qcow2 (or other QEMU format) image for
// one device and exports it over NBD on a private Unix socket, for the nbd target to serve. It is
// the queue daemon's child: it dies with it (PDEATHSIG), may write only its image (Landlock), and
// is started again with a backoff if it dies while the device is served.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "device_spec.h"
#include "landlock.h"
#include "unique_fd.h"

namespace ublkd {

class QemuStorageDaemon {
 public:
  // Starts the daemon on the spec's image. Throws SpecError (/path, /format) for an image that is
  // not there or not of its format; the export is reached (and its errors seen) through uri().
  explicit QemuStorageDaemon(const DeviceSpec& spec);
  QemuStorageDaemon(const QemuStorageDaemon&) = delete;
  QemuStorageDaemon& operator=(const QemuStorageDaemon&) = delete;
  // SIGTERM, then SIGKILL after a grace period; removes the socket's directory.
  ~QemuStorageDaemon();

  std::string uri() const;
  // The last lines the daemon wrote to stderr (its reason, when it exited), or "".
  std::string lastError() const;
  // Whether the daemon has exited; waits up to `ms` for it.
  bool exited(int ms) const;
  // Whether a daemon runs (the supervisor may be starting the next); waits up to `ms` for one.
  bool running(int ms) const;
  // Whether its last exit was QEMU refusing the image lock (another process has the image open).
  bool lockRefused() const;

 private:
  void spawn();
  void supervise();
  void readStderr();

  std::string image_;
  std::vector<std::string> argv_;
  LandlockPolicy policy_;
  std::string dir_;           // private (0700) directory of the socket
  mutable std::mutex mutex_;  // guards running_ and lastLines_, which other threads read
  mutable std::condition_variable changed_;
  bool running_ = false;
  std::deque<std::string> lastLines_;
  pid_t pid_ = 0;
  ublk::UniqueFd pidfd_;
  ublk::UniqueFd stderr_;  // read end of the daemon's stderr
  std::string pending_;    // stderr text short of a newline
  std::chrono::steady_clock::time_point startedAt_;
  ublk::UniqueFd wake_;  // eventfd: the destructor stops supervise()
  std::atomic<bool> stopping_ = false;
  std::thread supervisor_;
};

}  // namespace ublkd
