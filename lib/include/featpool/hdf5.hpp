#pragma once
// HDF5 files. Debian's libhdf5 drags dozens of shared libraries into any
// process that links it, so the reader and the writer live in a separately
// loaded module (featpool_hdf5.so beside the executable), dlopen'ed on the
// first HDF5 file read or written: a run that touches only NPY and NPZ never
// loads it.

#include <memory>
#include <string>

#include "featpool/sink.hpp"
#include "featpool/source.hpp"

namespace featpool {

// Opens an HDF5 file and lists every dataset in it, recursively.
std::unique_ptr<tensor_source> open_hdf5_file(const std::string& path);

// Writes pooled tensors into a new HDF5 file: one dataset per tensor, groups
// created as its path needs, featpool's provenance attributes on each, and
// no object timestamps, so the same tensors give the same bytes.
class hdf5_writer {
 public:
  virtual ~hdf5_writer() = default;
  virtual void write(const std::string& name, const pooled_tensor& tensor,
                     const std::optional<provenance>& origin) = 0;
  // Flushes and closes the file; throws featpool::error on failure.
  virtual void close() = 0;
};

// Creates (or truncates) the HDF5 file at `path`; errors name `display`,
// the file the user asked for, since `path` is a temporary name.
std::unique_ptr<hdf5_writer> create_hdf5_file(const std::string& path, const std::string& display);

// The module's file name and its entry points, shared by loader and module.
inline constexpr const char* kHdf5ModuleFile = "featpool_hdf5.so";
inline constexpr const char* kHdf5OpenSymbol = "featpool_hdf5_open";
inline constexpr const char* kHdf5CreateSymbol = "featpool_hdf5_create";
extern "C" {
// Returns a new tensor_source the caller owns; throws featpool::error.
using hdf5_open_function = tensor_source* (*)(const char* path);
// Returns a new hdf5_writer the caller owns; throws featpool::error.
using hdf5_create_function = hdf5_writer* (*)(const char* path, const char* display);
}

}  // namespace featpool
