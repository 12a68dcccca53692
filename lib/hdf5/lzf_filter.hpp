#pragma once
// h5py's LZF filter (HDF5 filter 32000). h5py ships it compiled into its own
// extension, so no HDF5 plugin provides it: files h5py wrote with
// compression="lzf" are readable only where the filter is registered by hand.

#include <hdf5.h>

namespace featpool::detail {

inline constexpr H5Z_filter_t kLzfFilterId = 32000;

// Registers the filter with HDF5 for this process. Call once, under h5_lock.
// Throws featpool::error if HDF5 refuses it.
void register_lzf_filter();

}  // namespace featpool::detail
