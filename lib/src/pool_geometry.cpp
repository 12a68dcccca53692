#include "pool_geometry.hpp"

namespace featpool {

geometry make_geometry(const tensor_info& input, const pool_request& request) {
  geometry g;
  const auto& axes = request.axes;
  g.spatial_axes = axes.spatial_axes;
  g.output_shape = pooled_shape(input.shape, request);
  std::size_t rank = input.shape.size();
  g.output_strides.assign(rank, 1);
  for (std::size_t l = rank; l-- > 1;)
    g.output_strides[l - 1] = g.output_strides[l] * g.output_shape[l];
  for (auto extent : g.output_shape) g.output_count *= extent;

  g.windows.reserve(axes.spatial_axes.size());
  std::vector<const axis_windows*> windows_of(rank, nullptr);
  for (std::size_t s = 0; s < axes.spatial_axes.size(); ++s) {
    std::size_t l = axes.spatial_axes[s];
    g.windows.push_back(plan_axis(input.shape[l], request.output_spatial[s]));
  }
  std::vector<std::uint64_t> plane_strides(rank, 0);
  std::uint64_t stride = 1;
  for (std::size_t s = axes.spatial_axes.size(); s-- > 0;) {
    std::size_t l = axes.spatial_axes[s];
    windows_of[l] = &g.windows[s];
    plane_strides[l] = stride;
    stride *= input.shape[l];
  }
  // Fortran order is C order with the axes reversed.
  for (std::size_t m = 0; m < rank; ++m) {
    std::size_t l = input.order == memory_order::c ? m : rank - 1 - m;
    g.axes.push_back({input.shape[l], g.output_strides[l], windows_of[l], plane_strides[l]});
  }
  g.output_order = input.order == memory_order::c || rank <= 1;
  g.planar = g.axes.back().windows != nullptr;
  while (g.prefix < g.axes.size() && g.axes[g.prefix].windows == nullptr) ++g.prefix;
  if (g.prefix > 0) {
    g.unit_length = 1;
    for (std::size_t m = g.prefix; m < g.axes.size(); ++m) g.unit_length *= g.axes[m].extent;
  }
  return g;
}

}  // namespace featpool
