// The 64-bit user_data of every SQE on a queue ring: the tag, whether the SQE is a ublk command,
// a target's own I/O for a request, or a target's event (no request), and a target-chosen op
// code. One codec, so nobody packs bits by hand.
#pragma once

#include <cstdint>

namespace ublk {

struct UserData {
  uint16_t tag = 0;
  bool targetIo = false;
  uint8_t op = 0;
  bool targetEvent = false;

  static constexpr unsigned kTagBits = 16;
  static constexpr unsigned kEventBit = 17;
  static constexpr unsigned kOpShift = 24;

  constexpr uint64_t encode() const {
    return uint64_t{tag} | (uint64_t{targetIo} << kTagBits) | (uint64_t{targetEvent} << kEventBit) |
           (uint64_t{op} << kOpShift);
  }
  static constexpr UserData decode(uint64_t raw) {
    return {.tag = static_cast<uint16_t>(raw & 0xffff),
            .targetIo = ((raw >> kTagBits) & 1) != 0,
            .op = static_cast<uint8_t>((raw >> kOpShift) & 0xff),
            .targetEvent = ((raw >> kEventBit) & 1) != 0};
  }
  constexpr bool operator==(const UserData&) const = default;
};

static_assert(UserData::decode(UserData{.tag = 4095, .targetIo = true, .op = 255}.encode()) ==
              UserData{.tag = 4095, .targetIo = true, .op = 255});
static_assert(UserData::decode(UserData{.op = 7, .targetEvent = true}.encode()) ==
              UserData{.op = 7, .targetEvent = true});

}  // namespace ublk
