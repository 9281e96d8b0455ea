// ProcessInfo: /proc/PID/cmdline, and /proc/PID/task/*/stat and wchan.
#include "process_info.h"

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "text_file.h"

namespace ublkd {

std::vector<std::string> commandLine(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/cmdline", pid));
  std::vector<std::string> argv;
  for (std::string arg; std::getline(in, arg, '\0');) argv.push_back(arg);
  return argv;
}

std::string describeStuckThreads(pid_t pid) {
  std::string text;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
    std::string stat;
    try {
      stat = readTextFile(task.path() / "stat");
    } catch (const std::exception&) {
      continue;  // the thread ended meanwhile
    }
    // "TID (COMM) STATE ...": COMM may hold spaces and parentheses, so the last ')' ends it.
    const size_t open = stat.find('(');
    const size_t close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close + 2 >= stat.size()) continue;
    if (stat[close + 2] != 'D') continue;
    std::string wchan = "?";
    try {
      wchan = readTextFile(task.path() / "wchan");
    } catch (const std::exception&) {
    }
    if (!text.empty()) text += ", ";
    text += fmt::format("thread {} in D state at {}", stat.substr(open + 1, close - open - 1), wchan);
  }
  return text;
}

}  // namespace ublkd
