// The argmax of every max window, PyTorch's return_indices. Its CPU kernel
// walks each window in row-major order and takes an element when
// `value > max || isnan(value)`: of equal maxima the first is kept, and of
// several NaN the last. Here elements come in storage order (NHWC, Fortran
// order, blocks split between streams), so the same rule is stated
// without an order: the largest value, and among equal ones the smallest
// spatial offset; once the window holds NaN, the NaN with the largest
// offset. -0.0 and +0.0 are equal, as torch compares them.
//
// Each element goes to each cell whose window holds it, as for lse: the
// values themselves come from the max kernel, fed the same blocks.

#include "argmax_kernel.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "cell_walk.hpp"
#include "kernels/column_kernels.hpp"
#include "pool_geometry.hpp"

#include "featpool/element.hpp"

namespace featpool {
namespace {

// The maximum so far and where it is. Compared in the type maxima are
// kept in (halves as float), so large integers tie only when equal.
template <class M>
struct argmax_cell {
  // No element yet: the first one always wins, -inf and the lowest
  // integer included, as its offset is smaller.
  M value = std::numeric_limits<M>::has_infinity ? -std::numeric_limits<M>::infinity()
                                                 : std::numeric_limits<M>::lowest();
  std::uint64_t offset = std::numeric_limits<std::uint64_t>::max();
};

template <class M>
void fold(argmax_cell<M>& cell, M value, std::uint64_t offset) {
  if constexpr (std::is_floating_point_v<M>) {
    if (std::isnan(cell.value)) {
      if (std::isnan(value) && offset > cell.offset) cell = {value, offset};
      return;
    }
    if (std::isnan(value)) {
      cell = {value, offset};
      return;
    }
  }
  if (value > cell.value || (value == cell.value && offset < cell.offset)) cell = {value, offset};
}

// Feeds elements from `position` on into the cells. Streams that start at
// unit boundaries feed disjoint cells, so they share the cells safely.
template <class T>
class argmax_feed {
 public:
  using max_t = kernels::max_t<T>;

  argmax_feed(const geometry& g, argmax_cell<max_t>* cells, std::uint64_t position)
      : cells_(cells), walk_(g, position) {}

  void consume(std::span<const std::byte> block) {
    for (const T& element : elements_of<T>(block)) {
      const max_t value = kernels::as_max(element);
      const std::uint64_t offset = walk_.spatial_offset();
      walk_.visit_cells([&](std::uint64_t cell) { fold(cells_[cell], value, offset); });
      walk_.advance();
    }
  }

 private:
  argmax_cell<max_t>* cells_;
  cell_walk walk_;
};

template <class T>
class typed_argmax_kernel final : public argmax_kernel {
  using max_t = kernels::max_t<T>;

 public:
  typed_argmax_kernel(const tensor_info& input, const pool_request& request)
      : g_(make_geometry(input, request)), cells_(g_.output_count), feed_(g_, cells_.data(), 0) {}

  void consume(std::span<const std::byte> block) override { feed_.consume(block); }

  std::unique_ptr<pooler::stream> open_stream(std::uint64_t first) override {
    return std::make_unique<feed_stream<argmax_feed<T>>>(argmax_feed<T>(g_, cells_.data(), first));
  }

  pooled_tensor finish() override {
    pooled_tensor out;
    out.shape = g_.output_shape;
    out.type = dtype::int64;
    out.data.resize(g_.output_count * sizeof(std::int64_t));
    for (std::uint64_t cell = 0; cell < g_.output_count; ++cell) {
      auto offset = static_cast<std::int64_t>(cells_[cell].offset);
      std::memcpy(out.data.data() + cell * sizeof offset, &offset, sizeof offset);
    }
    return out;
  }

 private:
  geometry g_;
  std::vector<argmax_cell<max_t>> cells_;
  argmax_feed<T> feed_;
};

}  // namespace

std::unique_ptr<argmax_kernel> make_argmax_kernel(const tensor_info& input,
                                                  const pool_request& request) {
  return visit_dtype(*input.type, [&]<class T>(std::type_identity<T>) {
    return std::unique_ptr<argmax_kernel>(std::make_unique<typed_argmax_kernel<T>>(input, request));
  });
}

}  // namespace featpool
