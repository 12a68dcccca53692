#include "featpool/dtype.hpp"

#include <array>
#include <bit>

namespace featpool {
namespace {

struct dtype_entry {
  dtype type;
  std::string_view name;
  std::size_t size;
};

constexpr std::array kDtypes{
    dtype_entry{dtype::bool_, "bool", 1},        dtype_entry{dtype::int8, "int8", 1},
    dtype_entry{dtype::int16, "int16", 2},       dtype_entry{dtype::int32, "int32", 4},
    dtype_entry{dtype::int64, "int64", 8},       dtype_entry{dtype::uint8, "uint8", 1},
    dtype_entry{dtype::uint16, "uint16", 2},     dtype_entry{dtype::uint32, "uint32", 4},
    dtype_entry{dtype::uint64, "uint64", 8},     dtype_entry{dtype::float16, "float16", 2},
    dtype_entry{dtype::float32, "float32", 4},   dtype_entry{dtype::float64, "float64", 8},
    dtype_entry{dtype::bfloat16, "bfloat16", 2},
};

const dtype_entry& entry(dtype type) { return kDtypes[static_cast<std::size_t>(type)]; }

}  // namespace

std::string_view dtype_name(dtype type) { return entry(type).name; }

std::size_t dtype_size(dtype type) { return entry(type).size; }

std::optional<dtype> dtype_from_name(std::string_view name) {
  for (const auto& e : kDtypes) {
    if (e.name == name) return e.type;
  }
  return std::nullopt;
}

std::string_view byte_order_name(byte_order order) {
  switch (order) {
    case byte_order::little:
      return "little";
    case byte_order::big:
      return "big";
    case byte_order::none:
      break;
  }
  return "none";
}

byte_order native_byte_order() {
  return std::endian::native == std::endian::little ? byte_order::little : byte_order::big;
}

}  // namespace featpool
