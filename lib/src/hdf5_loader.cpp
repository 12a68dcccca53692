// Loads the HDF5 module (featpool_hdf5.so) on the first HDF5 file read or
// written; see module_loader.hpp.

#include "module_loader.hpp"

#include "featpool/hdf5.hpp"

namespace featpool {
namespace {

enum hdf5_entry : std::size_t { kOpen, kCreate };

const detail::loaded_module& hdf5_module() {
  // Initialized once, thread-safe; a failure is remembered, not retried.
  static const detail::loaded_module loaded("HDF5", kHdf5ModuleFile,
                                            {kHdf5OpenSymbol, kHdf5CreateSymbol});
  return loaded;
}

}  // namespace

std::unique_ptr<tensor_source> open_hdf5_file(const std::string& path) {
  auto open = hdf5_module().entry<hdf5_open_function>(kOpen, path);
  return std::unique_ptr<tensor_source>(open(path.c_str()));
}

std::unique_ptr<hdf5_writer> create_hdf5_file(const std::string& path, const std::string& display) {
  auto create = hdf5_module().entry<hdf5_create_function>(kCreate, display);
  return std::unique_ptr<hdf5_writer>(create(path.c_str(), display.c_str()));
}

}  // namespace featpool
