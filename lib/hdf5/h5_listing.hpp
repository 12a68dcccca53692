#pragma once
// A file's listing as the helper process that lists it (h5_isolation.hpp)
// sends it back: every field of every dataset, names as their raw bytes.

#include <string>
#include <vector>

#include "h5_isolation.hpp"

#include "featpool/source.hpp"

namespace featpool::detail {

// A dataset as listed, plus what only the HDF5 module needs to know of it.
struct listed_dataset {
  tensor_info info;
  bool null_space = false;  // h5py's Empty: listed, but holds no data
};

isolated_bytes encode_listing(const std::vector<listed_dataset>& datasets);

// The listing of `file` again. Throws featpool::error on bytes that are not
// a listing.
std::vector<listed_dataset> decode_listing(const isolated_bytes& bytes, const std::string& file);

}  // namespace featpool::detail
