// The null target: every request completes at once, with no data touched.
#include <cerrno>

#include "abi.h"
#include "target.h"

namespace ublkd {
namespace {

class NullHandler final : public ublk::RequestHandler {
 public:
  int start(ublk::SqeSource&, uint16_t, const ublk::abi::IoDesc& desc, std::byte*) override {
    switch (ublk::abi::opOf(desc)) {
      case ublk::abi::Op::Read:
      case ublk::abi::Op::Write:
        return static_cast<int>(desc.nr_sectors << 9);
      case ublk::abi::Op::Flush:
      case ublk::abi::Op::Discard:
      case ublk::abi::Op::WriteZeroes:
        return 0;
      default:
        return -EOPNOTSUPP;  // as the loop target answers ops it does not serve
    }
  }
  int complete(ublk::SqeSource&, uint16_t, uint8_t, int res) override { return res; }  // never called: no own I/O
};

class NullTarget final : public Target {
 public:
  explicit NullTarget(const DeviceSpec& spec)
      : geometry_{.sizeBytes = *spec.size,
                  .logicalBlock = spec.blockSize.value_or(512),
                  .physicalBlock = std::max<uint32_t>(spec.blockSize.value_or(512), 4096),
                  .readOnly = spec.readOnly,
                  .discard = true,
                  .writeZeroes = true} {}
  std::string_view name() const override { return "null"; }
  Geometry geometry() const override { return geometry_; }
  // Null never looks at data, so with USER_COPY the kernel need not copy any.
  ublk::DataPath preferredDataPath(bool) const override { return ublk::DataPath::None; }
  std::unique_ptr<ublk::RequestHandler> makeHandler(uint16_t, uint16_t, ublk::DataPath) override {
    return std::make_unique<NullHandler>();
  }

 private:
  Geometry geometry_;
};

}  // namespace

std::unique_ptr<Target> makeNullTarget(const DeviceSpec& spec) { return std::make_unique<NullTarget>(spec); }

}  // namespace ublkd
