#pragma once
// The closed set of element types featpool can pool, with numpy's names and
// sizes. Anything else a file may hold (strings, compounds, complex) is not a
// dtype here: it is described by its numpy dtype string in tensor_info.

#include <cstddef>
#include <optional>
#include <string_view>

namespace featpool {

enum class dtype {
  bool_,
  int8,
  int16,
  int32,
  int64,
  uint8,
  uint16,
  uint32,
  uint64,
  float16,
  float32,
  float64,
  // PyTorch's brain float: the upper half of a float32. No kernel has a
  // bfloat16 variant: readers are widened to float32 (bfloat16.hpp).
  bfloat16,
};

enum class byte_order { little, big, none };

// numpy's name: "bool", "int8", ..., "float64".
std::string_view dtype_name(dtype type);

// Bytes per element.
std::size_t dtype_size(dtype type);

// numpy's dtype name back to a dtype; nullopt for anything else.
std::optional<dtype> dtype_from_name(std::string_view name);

// "little", "big" or "none", as the JSON inspect output spells them.
std::string_view byte_order_name(byte_order order);

// The byte order of this machine.
byte_order native_byte_order();

}  // namespace featpool
