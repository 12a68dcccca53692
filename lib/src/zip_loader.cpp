// Loads the zip module (featpool_zip.so) on the first NPZ file read or
// written; see module_loader.hpp.

#include "module_loader.hpp"

#include "featpool/zip.hpp"

namespace featpool {
namespace {

enum zip_entry_point : std::size_t { kOpen, kCreate };

const detail::loaded_module& zip_module() {
  // Initialized once, thread-safe; a failure is remembered, not retried.
  static const detail::loaded_module loaded("zip", kZipModuleFile,
                                            {kZipOpenSymbol, kZipCreateSymbol});
  return loaded;
}

}  // namespace

std::unique_ptr<zip_reader> open_zip_reader(int fd, const std::string& path) {
  auto open = zip_module().entry<zip_open_function>(kOpen, path);
  return std::unique_ptr<zip_reader>(open(fd));
}

std::unique_ptr<zip_writer> create_zip_writer(const std::string& path, const std::string& display) {
  auto create = zip_module().entry<zip_create_function>(kCreate, display);
  return std::unique_ptr<zip_writer>(create(path.c_str()));
}

}  // namespace featpool
