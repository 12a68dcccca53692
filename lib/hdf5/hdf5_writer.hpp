#pragma once
// HDF5 outputs: featpool::hdf5_writer through the HDF5 C library.

#include <memory>
#include <string>

#include "featpool/hdf5.hpp"

namespace featpool::detail {

// Creates (or truncates) the file at `path`; errors name `display`. Throws
// featpool::error.
std::unique_ptr<hdf5_writer> create_hdf5_writer(const std::string& path,
                                                const std::string& display);

}  // namespace featpool::detail
