// The single table of ublk feature names, and decoding of a feature mask into those names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ublk {

// Names as the kernel spells them without the UBLK_F_ prefix, in bit order. Bits the table
// does not know decode as "BIT_<n>", so a newer kernel's features still show up.
std::vector<std::string> featureNames(uint64_t mask);
std::string_view featureName(unsigned bit);

}  // namespace ublk
