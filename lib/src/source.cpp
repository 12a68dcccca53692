#include "featpool/source.hpp"

#include <system_error>

#include "featpool/byte_stream.hpp"
#include "featpool/element.hpp"
#include "featpool/error.hpp"

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

void read_raw_elements(const raw_extent& raw, const tensor_info& info, std::size_t item,
                       std::uint64_t first, std::span<std::byte> block) {
  std::size_t got;
  try {
    got = pread_fully(raw.fd, block, raw.offset + first * item);
  } catch (const std::system_error& failure) {
    throw error(info.file, info.name, "read failed: " + failure.code().message());
  }
  if (got < block.size()) {
    throw error(info.file, info.name, "truncated data: the file shrank while being read");
  }
  if (raw.swap_bytes) swap_byte_order(block, item);
}

}  // namespace featpool
