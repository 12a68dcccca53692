#pragma once
// Loads featpool's separately built modules (featpool_hdf5.so,
// featpool_zip.so), each on the first file that needs it. A module is looked
// up beside the running executable, not on the library path, so the
// executable always pairs with the modules built with it; it is loaded once
// per process and never unloaded (its objects may live until exit).

#include <cstddef>
#include <initializer_list>
#include <string>
#include <vector>

namespace featpool::detail {

class loaded_module {
 public:
  // Loads `file` and looks up `symbols`: either all are found, or none is
  // and the failure is remembered. `kind` names the module in errors ("the
  // HDF5 module").
  loaded_module(std::string kind, const char* file, std::initializer_list<const char*> symbols);

  // The entry point symbols[index], as a `Function`. When the module could
  // not be loaded, throws featpool::error naming `display`: "cannot load the
  // KIND module: REASON".
  template <class Function>
  Function entry(std::size_t index, const std::string& display) const {
    if (entries_.empty()) fail(display);
    return reinterpret_cast<Function>(entries_.at(index));
  }

 private:
  [[noreturn]] void fail(const std::string& display) const;

  std::string kind_;
  std::vector<void*> entries_;  // one per symbol, or empty
  std::string failure_;         // why it could not be loaded
};

}  // namespace featpool::detail
