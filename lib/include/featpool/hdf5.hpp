#pragma once
// HDF5 files. Debian's libhdf5 drags dozens of shared libraries into any
// process that links it, so the reader lives in a separately loaded module
// (featpool_hdf5.so beside the executable), dlopen'ed on the first HDF5 file:
// a run that touches only NPY and NPZ never loads it.

#include <memory>
#include <string>

#include "featpool/source.hpp"

namespace featpool {

// Opens an HDF5 file and lists every dataset in it, recursively.
std::unique_ptr<tensor_source> open_hdf5_file(const std::string& path);

// The module's file name and its entry point, shared by loader and module.
inline constexpr const char* kHdf5ModuleFile = "featpool_hdf5.so";
inline constexpr const char* kHdf5OpenSymbol = "featpool_hdf5_open";
extern "C" {
// Returns a new tensor_source the caller owns; throws featpool::error.
using hdf5_open_function = tensor_source* (*)(const char* path);
}

}  // namespace featpool
