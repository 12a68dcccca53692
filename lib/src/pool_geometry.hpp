#pragma once
// Where a tensor's elements go when pooled: its axes in storage order, each
// with its stride in the output and, for spatial axes, its windows. Every
// kernel walks the input with it, from an element to the cells it feeds.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "featpool/pool.hpp"
#include "featpool/source.hpp"
#include "featpool/windows.hpp"

namespace featpool {

// One axis of the input, in the order its elements are stored.
struct memory_axis {
  std::uint64_t extent = 0;
  std::uint64_t output_stride = 0;        // this axis's stride in the C-order output
  const axis_windows* windows = nullptr;  // spatial axes only
  // Spatial axes only: this axis's stride in the input's spatial plane,
  // whose axes are in layout order (h·W + w for NCHW and NHWC alike).
  std::uint64_t plane_stride = 0;
};

// Everything about a pooling job that does not depend on the dtype.
struct geometry {
  std::vector<axis_windows> windows;  // one per spatial axis, in layout order
  std::vector<memory_axis> axes;      // slowest first
  std::vector<std::uint64_t> output_shape;
  std::uint64_t output_count = 1;
  std::vector<std::uint64_t> output_strides;  // per layout axis
  std::vector<std::size_t> spatial_axes;      // layout positions of the spatial axes
  // The fastest axis in storage is spatial (NCHW, not NHWC): its rows are
  // summed column by column into a buffer, then window by window.
  bool planar = false;
  // Work splits into units that feed disjoint cells: the elements sharing
  // every coordinate of the leading non-spatial axes in storage order
  // (planes of NCHW, samples of NHWC). 0 when storage starts with a
  // spatial axis.
  std::uint64_t unit_length = 0;
  std::size_t prefix = 0;  // how many storage axes lead before the first spatial one
  // Storage order is the output's C order (the input is in C order): the
  // cells are then fed in order, front to back.
  bool output_order = false;
};

// The geometry of pooling `input` as `request` asks (not a pyramid). The
// memory axes point into `windows`: move a geometry, never copy it.
geometry make_geometry(const tensor_info& input, const pool_request& request);

}  // namespace featpool
