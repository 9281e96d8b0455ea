// The table of targets: the one place a spec's "target" picks its implementation.
#include "target.h"

namespace ublkd {

std::unique_ptr<Target> makeTarget(const DeviceSpec& spec, std::optional<BackingStore> backing) {
  switch (spec.target) {
    case TargetKind::Null:
      return makeNullTarget(spec);
    case TargetKind::Loop:
      return makeLoopTarget(spec, backing ? std::move(*backing) : BackingStore::open(spec.path, spec.readOnly));
    case TargetKind::Nbd:
      return makeNbdTarget(spec);
    case TargetKind::Qcow2:
      return makeQcow2Target(spec);
    case TargetKind::Rbd:
      return makeRbdTarget(spec);
  }
  throw SpecError("/target", "unknown target");
}

}  // namespace ublkd
