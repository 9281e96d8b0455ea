// The table of targets: the one place a spec's "target" picks its implementation.
#include "target.h"

namespace ublkd {

std::unique_ptr<Target> makeTarget(const DeviceSpec& spec) {
  switch (spec.target) {
    case TargetKind::Null:
      return makeNullTarget(spec);
    case TargetKind::Loop:
      return makeLoopTarget(spec);
  }
  throw SpecError("/target", "unknown target");
}

}  // namespace ublkd
