#pragma once
// An HDF5 file as a tensor_source: every dataset in it, listed once.

#include <memory>
#include <string>

#include "featpool/source.hpp"

namespace featpool::detail {

// Opens the file read-only, lists its datasets and closes it again; readers
// reopen it, so thousands of listed files hold no descriptors. Throws
// featpool::error.
std::unique_ptr<tensor_source> open_hdf5_source(const std::string& path);

}  // namespace featpool::detail
