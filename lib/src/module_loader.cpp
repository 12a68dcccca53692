#include "module_loader.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "featpool/error.hpp"

namespace featpool::detail {
namespace {

std::string dl_failure() {
  const char* text = dlerror();
  std::string failure = text ? text : "unknown dynamic loader error";
  std::replace_if(
      failure.begin(), failure.end(), [](char c) { return c == '\n'; }, ' ');
  return failure;
}

}  // namespace

loaded_module::loaded_module(std::string kind, const char* file,
                             std::initializer_list<const char*> symbols)
    : kind_(std::move(kind)) {
  std::error_code code;
  auto executable = std::filesystem::read_symlink("/proc/self/exe", code);
  if (code) {
    failure_ = "cannot find the running executable: " + code.message();
    return;
  }
  auto path = executable.parent_path() / file;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    failure_ = dl_failure();
    return;
  }
  dlerror();
  std::vector<void*> entries;
  for (const char* symbol : symbols) {
    void* entry = dlsym(handle, symbol);
    if (entry == nullptr) {
      failure_ = dl_failure();
      return;
    }
    entries.push_back(entry);
  }
  entries_ = std::move(entries);
}

void loaded_module::fail(const std::string& display) const {
  throw error(display, "cannot load the " + kind_ + " module: " + failure_);
}

}  // namespace featpool::detail
