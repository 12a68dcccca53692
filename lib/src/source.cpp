#include "featpool/source.hpp"

namespace featpool {

std::string_view file_format_name(file_format format) {
  switch (format) {
    case file_format::npy:
      break;
    case file_format::npz:
      return "npz";
    case file_format::hdf5:
      return "hdf5";
    case file_format::safetensors:
      return "safetensors";
    case file_format::torch:
      return "pt";
  }
  return "npy";
}

std::string tensor_reference(const tensor_info& info) {
  if (info.format == file_format::npy) return info.file;
  return info.file + ":" + info.name;
}

std::uint64_t tensor_info::element_count() const noexcept {
  std::uint64_t count = 1;
  for (auto extent : shape) count *= extent;  // formats check for overflow on open
  return count;
}

}  // namespace featpool
