// Loads the HDF5 module (featpool_hdf5.so) on the first HDF5 file read or
// written. It is looked up beside the running executable, not on the library
// path, so the executable always pairs with the module built with it; it is
// loaded once per process and never unloaded (its objects may live until
// exit).

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "featpool/error.hpp"
#include "featpool/hdf5.hpp"

namespace featpool {
namespace {

// The loaded module's entry points; both are set, or neither is.
struct hdf5_module {
  void* handle = nullptr;  // for looking up further entry points
  hdf5_open_function open = nullptr;
  hdf5_create_function create = nullptr;
  std::string failure;  // why it could not be loaded, when the entry points are null
};

std::string dl_failure() {
  const char* text = dlerror();
  std::string failure = text ? text : "unknown dynamic loader error";
  std::replace_if(
      failure.begin(), failure.end(), [](char c) { return c == '\n'; }, ' ');
  return failure;
}

hdf5_module load_module() {
  std::error_code code;
  auto executable = std::filesystem::read_symlink("/proc/self/exe", code);
  hdf5_module loaded;
  if (code) {
    loaded.failure = "cannot find the running executable: " + code.message();
    return loaded;
  }
  auto path = executable.parent_path() / kHdf5ModuleFile;
  loaded.handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (loaded.handle == nullptr) {
    loaded.failure = dl_failure();
    return loaded;
  }
  dlerror();
  void* open = dlsym(loaded.handle, kHdf5OpenSymbol);
  void* create = open ? dlsym(loaded.handle, kHdf5CreateSymbol) : nullptr;
  if (create == nullptr) {
    loaded.failure = dl_failure();
    return loaded;
  }
  loaded.open = reinterpret_cast<hdf5_open_function>(open);
  loaded.create = reinterpret_cast<hdf5_create_function>(create);
  return loaded;
}

const hdf5_module& loaded_module() {
  // Initialized once, thread-safe; a failure is remembered, not retried.
  static const hdf5_module loaded = load_module();
  return loaded;
}

}  // namespace

std::unique_ptr<tensor_source> open_hdf5_file(const std::string& path) {
  const hdf5_module& loaded = loaded_module();
  if (loaded.open == nullptr) throw error(path, "cannot load the HDF5 module: " + loaded.failure);
  return std::unique_ptr<tensor_source>(loaded.open(path.c_str()));
}

std::unique_ptr<hdf5_writer> create_hdf5_file(const std::string& path, const std::string& display) {
  const hdf5_module& loaded = loaded_module();
  if (loaded.create == nullptr) {
    throw error(display, "cannot load the HDF5 module: " + loaded.failure);
  }
  return std::unique_ptr<hdf5_writer>(loaded.create(path.c_str(), display.c_str()));
}

}  // namespace featpool
