// DataPath: the granted flags that choose it, and its name.
#include "data_path.h"

#include "abi.h"

namespace ublk {

DataPath dataPathOf(uint64_t grantedFlags) {
  if ((grantedFlags & abi::feature::kAutoBufReg) != 0) return DataPath::ZeroCopy;
  if ((grantedFlags & abi::feature::kUserCopy) != 0) return DataPath::None;
  if ((grantedFlags & abi::feature::kNeedGetData) != 0) return DataPath::HandlerMapped;
  return DataPath::Copy;
}

std::string_view dataPathName(DataPath path) {
  switch (path) {
    case DataPath::ZeroCopy:
      return "zero-copy";
    case DataPath::None:
      return "user-copy";
    case DataPath::HandlerMapped:
      return "mapped";
    case DataPath::Copy:
      break;
  }
  return "copy";
}

}  // namespace ublk
