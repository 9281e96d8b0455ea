// Log: ublkd's structured log. Under systemd (stderr is the journal stream) each entry goes to
// the journal with its fields (DEVICE=, TARGET=, ...), so `journalctl DEVICE=disk0` finds them;
// elsewhere it is one line on stderr with the fields appended.
#pragma once

#include <syslog.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace ublkd::log {

using Field = std::pair<std::string_view, std::string>;

void write(int priority, std::string_view message, std::initializer_list<Field> fields = {});

inline void info(std::string_view message, std::initializer_list<Field> fields = {}) {
  write(LOG_INFO, message, fields);
}
inline void warning(std::string_view message, std::initializer_list<Field> fields = {}) {
  write(LOG_WARNING, message, fields);
}
inline void error(std::string_view message, std::initializer_list<Field> fields = {}) {
  write(LOG_ERR, message, fields);
}

}  // namespace ublkd::log
