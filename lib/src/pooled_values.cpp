// Results kept in float64 until the end: rounded once to the output dtype,
// and normalized before that.

#include <cmath>
#include <type_traits>

#include "pool_kernel.hpp"

namespace featpool {
namespace {

// The sum of squares of one vector, in a fixed order, then every element
// divided by max(norm, eps), as F.normalize does.
template <class Index>
void normalize_vector(double* values, std::uint64_t length, Index at) {
  double squares = 0;
  for (std::uint64_t k = 0; k < length; ++k) squares += values[at(k)] * values[at(k)];
  const double norm = std::max(std::sqrt(squares), kNormalizeEps);
  for (std::uint64_t k = 0; k < length; ++k) values[at(k)] /= norm;
}

}  // namespace

pooled_tensor narrowed(std::vector<std::uint64_t> shape, const double* values, dtype type) {
  const std::uint64_t count = cell_count(shape);
  pooled_tensor out;
  out.shape = std::move(shape);
  out.type = type;
  out.data.resize(count * dtype_size(type));
  visit_dtype(type, [&]<class Out>(std::type_identity<Out>) {
    auto* target = reinterpret_cast<Out*>(out.data.data());
    for (std::uint64_t i = 0; i < count; ++i) target[i] = narrow<Out>(values[i]);
  });
  return out;
}

void normalize_l2(double* values, const std::vector<std::uint64_t>& shape,
                  std::optional<std::size_t> axis, normalization how) {
  if (how == normalization::none) return;
  // The shape as (outer, middle, inner) around `axis`; without one, a
  // middle of 1.
  std::uint64_t outer = 1, middle = 1, inner = 1;
  for (std::size_t l = 0; l < shape.size(); ++l) {
    if (axis && l < *axis) outer *= shape[l];
    if (axis && l == *axis) middle = shape[l];
    if (!axis || l > *axis) inner *= shape[l];
  }
  if (how == normalization::channels) {
    for (std::uint64_t o = 0; o < outer; ++o) {
      for (std::uint64_t i = 0; i < inner; ++i) {
        double* first = values + o * middle * inner + i;
        normalize_vector(first, middle, [&](std::uint64_t k) { return k * inner; });
      }
    }
    return;
  }
  // One vector per index of the middle axis: every (outer, inner) of it.
  for (std::uint64_t m = 0; m < middle; ++m) {
    double* first = values + m * inner;
    normalize_vector(first, outer * inner,
                     [&](std::uint64_t k) { return (k / inner) * middle * inner + k % inner; });
  }
}

}  // namespace featpool
