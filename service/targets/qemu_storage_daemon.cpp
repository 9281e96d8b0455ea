// QemuStorageDaemon: the image's checks (qemu-img info), the daemon's command line, its start
// (listening socket passed as fd 3, stderr to a pipe, Landlock), and its supervision thread.
#include "qemu_storage_daemon.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
// glibc 2.36 declares these without C linkage for C++ (fixed in 2.37).
extern "C" {
#include <sys/pidfd.h>
}

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "exec_args.h"
#include "service_error.h"
#include "throw_errno.h"

namespace ublkd {
namespace {

using namespace std::chrono_literals;

constexpr int kListenFdInChild = 3;
constexpr auto kStopGrace = 10s;
constexpr auto kFirstRestartDelay = 500ms;
constexpr auto kMaxRestartDelay = 10s;
constexpr auto kHealthyRun = 30s;
// QEMU's reason for an exit takes a line or two ("Failed to get "write" lock" / "Is another
// process using the image?").
constexpr size_t kLinesKept = 3;  // a daemon that ran this long restarts without delay growth

// Where the daemon's system files are: it may read (and run) these and its images, nothing else.
const std::vector<std::string> kSystemPaths = {"/usr", "/lib", "/lib64", "/etc", "/proc", "/sys", "/dev"};

// QEMU's option syntax: a comma in a value is written twice.
std::string qemuValue(const std::string& text) {
  std::string escaped;
  for (const char c : text) {
    escaped += c;
    if (c == ',') escaped += ',';
  }
  return escaped;
}

std::string findExecutable(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw ServiceError(ErrorKind::BackendUnavailable,
                     fmt::format("{} is not installed (Debian package qemu-system-common for qemu-storage-daemon, "
                                 "qemu-utils for qemu-img)",
                                 name));
}

// Runs a short command; returns its exit status, stdout and stderr.
struct Output {
  int status = -1;
  std::string out;
  std::string err;
};
Output capture(const std::vector<std::string>& argv) {
  int outPipe[2], errPipe[2];
  if (::pipe2(outPipe, O_CLOEXEC) != 0 || ::pipe2(errPipe, O_CLOEXEC) != 0) ublk::throwErrno(errno, "pipe2");
  ublk::UniqueFd outRead(outPipe[0]), outWrite(outPipe[1]), errRead(errPipe[0]), errWrite(errPipe[1]);
  const ExecArgs args(argv);
  const pid_t pid = ::fork();
  if (pid < 0) ublk::throwErrno(errno, "fork");
  if (pid == 0) {
    unblockSignalsInChild();
    if (::dup2(outWrite.get(), STDOUT_FILENO) < 0 || ::dup2(errWrite.get(), STDERR_FILENO) < 0) ::_exit(127);
    ::execv(args.path(), args.argv());
    ::_exit(127);
  }
  outWrite.reset();
  errWrite.reset();
  Output result;
  pollfd fds[2] = {{.fd = outRead.get(), .events = POLLIN, .revents = 0},
                   {.fd = errRead.get(), .events = POLLIN, .revents = 0}};
  std::string* into[2] = {&result.out, &result.err};
  int open = 2;
  while (open > 0) {
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[4096];
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        into[i]->append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;
        --open;
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string lastLine(const std::string& text) {
  std::string line;
  std::istringstream lines(text);
  for (std::string l; std::getline(lines, l);) {
    if (!l.empty()) line = l;
  }
  return line;
}

// The image and its backing chain, as QEMU resolves it; throws SpecError if QEMU cannot read it.
std::vector<std::string> imageChain(const DeviceSpec& spec) {
  struct stat status {};
  if (::stat(spec.path.c_str(), &status) != 0) {
    throw SpecError("/path", fmt::format("cannot use {}: {}", spec.path, std::strerror(errno)));
  }
  if (!S_ISREG(status.st_mode) && !S_ISBLK(status.st_mode)) {
    throw SpecError("/path", fmt::format("{} is neither a regular file nor a block device", spec.path));
  }
  // -U: the image may be open elsewhere; the daemon's own lock is what refuses a second writer.
  const Output info = capture(
      {findExecutable("qemu-img"), "info", "--output=json", "--backing-chain", "-U", "-f", spec.format, spec.path});
  if (info.status != 0) {
    std::string why = lastLine(info.err);
    if (why.starts_with("qemu-img: ")) why.erase(0, 10);
    throw SpecError(why.find("format") != std::string::npos ? "/format" : "/path", why);
  }
  std::vector<std::string> chain;
  try {
    for (const auto& image : nlohmann::json::parse(info.out)) chain.push_back(image.at("filename").get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("cannot read qemu-img info of {}: {}", spec.path, e.what()));
  }
  return chain;
}

LandlockPolicy::Paths confinement(const DeviceSpec& spec, const std::vector<std::string>& chain) {
  // QEMU opens /dev/null read-write to probe for OFD locks.
  LandlockPolicy::Paths paths{.readOnly = kSystemPaths, .readWrite = {"/dev/null"}};
  for (size_t i = 0; i < chain.size(); ++i) {
    // Backing files are only read; the image itself is written unless the device is read-only.
    (i == 0 && !spec.readOnly ? paths.readWrite : paths.readOnly).push_back(chain[i]);
  }
  return paths;
}

// A close-on-exec copy of `fd` above the fds the child is given (0-3), so that no dup2 there
// lands on another source, or on itself (which would leave close-on-exec set).
ublk::UniqueFd aboveStdio(ublk::UniqueFd fd) {
  if (!fd) ublk::throwErrno(errno, "open a file for qemu-storage-daemon");
  ublk::UniqueFd copy(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 10));
  if (!copy) ublk::throwErrno(errno, "fcntl F_DUPFD_CLOEXEC");
  return copy;
}

std::string runtimeBase() {
  for (const char* dir : {static_cast<const char*>(std::getenv("RUNTIME_DIRECTORY")), "/run/ublkd", "/run", "/tmp"}) {
    if (dir != nullptr && ::access(dir, W_OK) == 0) return dir;
  }
  return "/tmp";
}

}  // namespace

QemuStorageDaemon::QemuStorageDaemon(const DeviceSpec& spec)
    : image_(spec.path), policy_(confinement(spec, imageChain(spec))) {
  const bool blockDevice = std::filesystem::is_block_file(spec.path);
  const std::string onOff = spec.readOnly ? "on" : "off";
  const std::string direct = spec.directIo.value_or(false) ? "on" : "off";
  argv_ = {
      findExecutable("qemu-storage-daemon"),
      "--blockdev",
      fmt::format("driver={},node-name=file,filename={},read-only={},cache.direct={},discard=unmap",
                  blockDevice ? "host_device" : "file", qemuValue(spec.path), onOff, direct),
      "--blockdev",
      fmt::format("driver={},node-name=image,file=file,read-only={},cache.direct={},discard=unmap", spec.format, onOff,
                  direct),
      // The server before the export that needs it: qemu-storage-daemon takes them in order.
      "--nbd-server",
      fmt::format("addr.type=fd,addr.str={}", kListenFdInChild),
      "--export",
      fmt::format("type=nbd,id=export,node-name=image,name=disk,writable={}", spec.readOnly ? "off" : "on"),
  };
  std::string dir = runtimeBase() + "/ublkd-qsd-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) ublk::throwErrno(errno, "mkdtemp " + dir);
  dir_ = dir;
  wake_ = ublk::UniqueFd(::eventfd(0, EFD_CLOEXEC));
  if (!wake_) ublk::throwErrno(errno, "eventfd");
  if (policy_.abiVersion() == 0) {
    fmt::print(stderr, "ublkd serve: qcow2: this kernel has no Landlock; qemu-storage-daemon runs unconfined\n");
  }
  try {
    spawn();
  } catch (...) {
    std::filesystem::remove_all(dir_);
    throw;
  }
  fmt::print(
      stderr, "ublkd serve: qcow2: qemu-storage-daemon (pid {}) serves {}{}\n", pid_, image_,
      policy_.abiVersion() > 0 ? fmt::format(", confined to it by Landlock (ABI {})", policy_.abiVersion()) : "");
  supervisor_ = std::thread(&QemuStorageDaemon::supervise, this);
}

QemuStorageDaemon::~QemuStorageDaemon() {
  stopping_ = true;
  const uint64_t one = 1;
  if (::write(wake_.get(), &one, sizeof(one)) != sizeof(one)) {
    // Cannot fail on an eventfd we own; the supervisor would then wait for the daemon to exit.
    fmt::print(stderr, "ublkd serve: qcow2: cannot wake the supervisor: {}\n", std::strerror(errno));
  }
  if (supervisor_.joinable()) supervisor_.join();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string QemuStorageDaemon::uri() const { return fmt::format("nbd+unix:///disk?socket={}/nbd.sock", dir_); }

std::string QemuStorageDaemon::lastError() const {
  std::lock_guard lock(mutex_);
  return fmt::format("{}", fmt::join(lastLines_, " "));
}

bool QemuStorageDaemon::lockRefused() const {
  const std::string error = lastError();
  return error.find("Failed to get") != std::string::npos && error.find("lock") != std::string::npos;
}

bool QemuStorageDaemon::exited(int ms) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return !running_; });
}

bool QemuStorageDaemon::running(int ms) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return running_; });
}

// A fresh listening socket each time: a dead daemon's socket refuses connections at once, rather
// than queueing them for nobody.
void QemuStorageDaemon::spawn() {
  const std::string path = dir_ + "/nbd.sock";
  ublk::UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener) ublk::throwErrno(errno, "socket");
  sockaddr_un address{.sun_family = AF_UNIX, .sun_path = {}};
  if (path.size() >= sizeof(address.sun_path)) throw std::runtime_error("socket path too long: " + path);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  ::unlink(path.c_str());
  if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    ublk::throwErrno(errno, "bind " + path);
  }
  if (::listen(listener.get(), 64) != 0) ublk::throwErrno(errno, "listen " + path);
  int errPipe[2];
  if (::pipe2(errPipe, O_CLOEXEC) != 0) ublk::throwErrno(errno, "pipe2");
  ublk::UniqueFd errRead(errPipe[0]);
  const ublk::UniqueFd errWrite = aboveStdio(ublk::UniqueFd(errPipe[1]));
  const ublk::UniqueFd devNull = aboveStdio(ublk::UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC)));
  listener = aboveStdio(std::move(listener));

  const ExecArgs args(argv_);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) ublk::throwErrno(errno, "fork (qemu-storage-daemon)");
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec.
    unblockSignalsInChild();
    // Dies with the queue daemon (the thread that forks it lives as long as the daemon).
    if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || ::getppid() != parent) ::_exit(126);
    // Before the dup2s, which may land on the ruleset's fd.
    if (!policy_.applyInChild()) {
      static constexpr char kMessage[] = "ublkd: cannot apply the Landlock policy\n";
      ::_exit(::write(errWrite.get(), kMessage, sizeof(kMessage) - 1) < 0 ? 127 : 126);
    }
    if (::dup2(devNull.get(), STDIN_FILENO) < 0 || ::dup2(devNull.get(), STDOUT_FILENO) < 0 ||
        ::dup2(errWrite.get(), STDERR_FILENO) < 0 || ::dup2(listener.get(), kListenFdInChild) < 0) {
      ::_exit(127);
    }
    ::execv(args.path(), args.argv());
    ::_exit(127);
  }
  pid_ = pid;
  pidfd_ = childPidfd(pid, "qemu-storage-daemon");
  stderr_ = std::move(errRead);
  startedAt_ = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    running_ = true;
    lastLines_.clear();
  }
  changed_.notify_all();
}

// Forwards the daemon's stderr to ours, a line at a time, and keeps the last line.
void QemuStorageDaemon::readStderr() {
  char buffer[4096];
  const ssize_t n = ::read(stderr_.get(), buffer, sizeof(buffer));
  if (n <= 0) {
    stderr_.reset();
    return;
  }
  pending_.append(buffer, static_cast<size_t>(n));
  for (size_t end; (end = pending_.find('\n')) != std::string::npos; pending_.erase(0, end + 1)) {
    const std::string line = pending_.substr(0, end);
    if (line.empty()) continue;
    fmt::print(stderr, "ublkd serve: qemu-storage-daemon: {}\n", line);
    std::lock_guard lock(mutex_);
    lastLines_.push_back(line.starts_with("qemu-storage-daemon: ") ? line.substr(21) : line);
    if (lastLines_.size() > kLinesKept) lastLines_.pop_front();
  }
}

void QemuStorageDaemon::supervise() {
  auto delay = std::chrono::milliseconds(kFirstRestartDelay);
  while (true) {
    // Until the daemon exits (or we are told to stop it), forward its stderr.
    bool exited = false;
    while (!exited && !stopping_) {
      pollfd fds[3] = {{.fd = pidfd_.get(), .events = POLLIN, .revents = 0},
                       {.fd = stderr_ ? stderr_.get() : -1, .events = POLLIN, .revents = 0},
                       {.fd = wake_.get(), .events = POLLIN, .revents = 0}};
      if (::poll(fds, 3, -1) < 0 && errno != EINTR) break;
      if (fds[1].revents != 0) readStderr();
      exited = fds[0].revents != 0;
    }
    if (!exited) {
      // Told to stop: SIGTERM, and SIGKILL if it does not go within the grace period.
      (void)::pidfd_send_signal(pidfd_.get(), SIGTERM, nullptr, 0);
      pollfd fd{.fd = pidfd_.get(), .events = POLLIN, .revents = 0};
      if (::poll(&fd, 1, static_cast<int>(std::chrono::milliseconds(kStopGrace).count())) == 0) {
        (void)::pidfd_send_signal(pidfd_.get(), SIGKILL, nullptr, 0);
      }
    }
    while (stderr_) readStderr();  // what it said last, up to its exit
    siginfo_t info{};
    (void)::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED);
    const auto ran = std::chrono::steady_clock::now() - startedAt_;
    {
      std::lock_guard lock(mutex_);
      running_ = false;
    }
    changed_.notify_all();
    if (stopping_) return;
    fmt::print(stderr, "ublkd serve: qcow2: qemu-storage-daemon (pid {}) {} {}; starting it again\n", pid_,
               info.si_code == CLD_EXITED ? "exited with status" : "was killed by signal", info.si_status);
    if (ran >= kHealthyRun) delay = kFirstRestartDelay;
    // The delay, unless told to stop meanwhile.
    pollfd wake{.fd = wake_.get(), .events = POLLIN, .revents = 0};
    if (::poll(&wake, 1, static_cast<int>(delay.count())) > 0 || stopping_) return;
    delay = std::min(delay * 2, std::chrono::milliseconds(kMaxRestartDelay));
    try {
      spawn();
    } catch (const std::exception& e) {
      fmt::print(stderr, "ublkd serve: qcow2: cannot start qemu-storage-daemon again: {}\n", e.what());
      return;
    }
  }
}

}  // namespace ublkd
