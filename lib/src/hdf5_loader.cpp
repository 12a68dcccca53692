// Loads the HDF5 module (featpool_hdf5.so) on the first HDF5 file. It is
// looked up beside the running executable, not on the library path, so the
// executable always pairs with the module built with it; it is loaded once
// per process and never unloaded (its objects may live until exit).

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "featpool/error.hpp"
#include "featpool/hdf5.hpp"

namespace featpool {
namespace {

struct hdf5_module {
  void* handle = nullptr;  // for looking up further entry points
  hdf5_open_function open = nullptr;
  std::string failure;  // why it could not be loaded, when open is null
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
  if (code) return {nullptr, nullptr, "cannot find the running executable: " + code.message()};
  auto path = executable.parent_path() / kHdf5ModuleFile;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return {nullptr, nullptr, dl_failure()};
  dlerror();
  void* symbol = dlsym(handle, kHdf5OpenSymbol);
  if (symbol == nullptr) return {handle, nullptr, dl_failure()};
  return {handle, reinterpret_cast<hdf5_open_function>(symbol), {}};
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

}  // namespace featpool
