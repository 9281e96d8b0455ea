// Log: journal entries with fields when stderr is the journal stream, plain lines otherwise.
#include "log.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace ublkd::log {
namespace {

// systemd sets JOURNAL_STREAM=<dev>:<inode> of the stream it connected stderr to.
bool stderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  struct stat st {};
  if (stream == nullptr || ::fstat(STDERR_FILENO, &st) != 0) return false;
  return fmt::format("{}:{}", st.st_dev, st.st_ino) == stream;
}

}  // namespace

void write(int priority, std::string_view message, std::initializer_list<Field> fields) {
  static const bool journal = stderrIsJournal();
  if (!journal) {
    std::string line = fmt::format("ublkd: {}", message);
    for (const auto& [key, value] : fields) line += fmt::format(" {}={}", key, value);
    fmt::print(stderr, "{}\n", line);
    return;
  }
  std::vector<std::string> entries;
  entries.reserve(fields.size() + 3);
  entries.push_back(fmt::format("MESSAGE={}", message));
  entries.push_back(fmt::format("PRIORITY={}", priority));
  entries.push_back("SYSLOG_IDENTIFIER=ublkd");
  for (const auto& [key, value] : fields) entries.push_back(fmt::format("{}={}", key, value));
  std::vector<iovec> iov;
  iov.reserve(entries.size());
  for (auto& e : entries) iov.push_back({e.data(), e.size()});
  if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) < 0) {
    fmt::print(stderr, "ublkd: {}\n", message);
  }
}

}  // namespace ublkd::log
