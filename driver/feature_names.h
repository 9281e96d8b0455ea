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

// How a device's request data moves, from the flags ADD_DEV granted it: "zero-copy" (AUTO_BUF_REG:
// the backend's I/O uses the request's own pages), "user-copy" (USER_COPY), "mapped"
// (NEED_GET_DATA: the kernel copies straight to and from the server's memory, such as a mapped
// page cache) or "copy" (through a buffer per tag).
std::string_view dataPathName(uint64_t flags);

}  // namespace ublk
