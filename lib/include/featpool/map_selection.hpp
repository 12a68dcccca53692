#pragma once
// Which maps of a tensor `featpool view` draws (one sample, some channels,
// one depth slice of 3-D maps) and reading just those elements in one pass
// over the tensor's blocks.

#include <cstdint>
#include <optional>
#include <vector>

#include "featpool/layout.hpp"
#include "featpool/python_slice.hpp"
#include "featpool/source.hpp"

namespace featpool {

// What the view flags ask for, before the tensor is known.
struct map_request {
  std::int64_t sample = 0;            // --sample, numpy-style index
  python_slice channels;              // --channels
  std::optional<std::int64_t> depth;  // --depth, numpy-style index
};

// The request resolved against one tensor: positions on its axes.
struct map_selection {
  layout axes;
  std::uint64_t sample = 0;             // on N; 0 without N
  std::vector<std::uint64_t> channels;  // on C, in drawing order; {0} without C
  std::optional<std::uint64_t> depth;   // on D, for 3-D maps
  std::uint64_t height = 1;             // of each map (1 for 1-D maps)
  std::uint64_t width = 1;
  std::uint64_t map_size() const { return height * width; }
};

// Resolves `request` for `info` (numeric) laid out as `axes`. Throws
// featpool::error naming the tensor when the layout does not fit its rank,
// when it has more than 3 spatial axes, or when the sample, the channels or
// the depth are out of its range.
map_selection select_maps(const tensor_info& info, const layout& axes, const map_request& request);

// The selected maps' values in float64, map after map, each row-major
// (height × width). Reads `reader`'s blocks of `type` only as far as the
// last selected element.
std::vector<double> read_maps(block_reader& reader, dtype type, const tensor_info& info,
                              const map_selection& selection);

}  // namespace featpool
