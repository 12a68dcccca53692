// The module's two exported symbols, its entry points: featpool_lib dlopens
// featpool_hdf5.so on the first HDF5 file it reads or writes and calls them;
// everything else in the module (and the copy of featpool_lib linked into
// it) stays hidden, so the module can never interpose on the executable's
// own symbols.
//
// Errors cross the boundary as C++ exceptions: featpool::error has external
// linkage, and g++ matches exception types across shared objects by their
// mangled name, so the executable catches the module's featpool::error as
// its own (tests/hdf5_test.cpp checks it).

#include <mutex>
#include <type_traits>

#include "hdf5_source.hpp"
#include "hdf5_writer.hpp"
#include "lzf_filter.hpp"

#include "featpool/hdf5.hpp"

extern "C" __attribute__((visibility("default"))) featpool::tensor_source* featpool_hdf5_open(
    const char* path) {
  // h5py's LZF is registered before the first file is opened; a failed
  // registration throws and is tried again on the next call.
  static std::once_flag lzf_registered;
  std::call_once(lzf_registered, featpool::detail::register_lzf_filter);
  return featpool::detail::open_hdf5_source(path).release();
}

extern "C" __attribute__((visibility("default"))) featpool::hdf5_writer* featpool_hdf5_create(
    const char* path, const char* display) {
  return featpool::detail::create_hdf5_writer(path, display).release();
}

static_assert(std::is_same_v<decltype(&featpool_hdf5_open), featpool::hdf5_open_function>,
              "the entry point must match what the loader looks up");
static_assert(std::is_same_v<decltype(&featpool_hdf5_create), featpool::hdf5_create_function>,
              "the entry point must match what the loader looks up");
