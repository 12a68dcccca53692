// The log-sum-exp of a window: (1/r)·log(mean over the window of exp(r·x)),
// a soft maximum (large r tends to the maximum, small r to the average).
//
// Computed stably, as torch.logsumexp is: shifted by the window's maximum,
// so that exp never overflows. Each cell keeps its running maximum m of
// r·x and the sum of exp(r·x − m), rescaled when m grows (the online
// log-sum-exp); the input is read once, as for every op. Each element goes
// to each cell whose window holds it, one at a time: exp costs more than
// finding the cells.

#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "cell_walk.hpp"
#include "pool_geometry.hpp"
#include "pool_kernel.hpp"

#include "featpool/element.hpp"

namespace featpool {
namespace {

struct lse_cell {
  double shift = -std::numeric_limits<double>::infinity();  // the largest r·x so far
  double sum = 0;  // of exp(r·x − shift); NaN once the window holds a NaN
};

// Folds y = r·x into a cell. Infinities as torch.logsumexp treats them: a
// window holding +inf gives +inf, one of -inf alone gives -inf.
void fold(lse_cell& cell, double y) {
  if (std::isnan(y)) {
    cell.sum = std::numeric_limits<double>::quiet_NaN();
  } else if (y > cell.shift) {
    cell.sum = cell.sum * std::exp(cell.shift - y) + 1;
    cell.shift = y;
  } else if (y == cell.shift) {
    cell.sum += 1;  // also inf == inf, where y - shift would be NaN
  } else {
    cell.sum += std::exp(y - cell.shift);
  }
}

// Feeds elements from `position` on into the cells. Streams that start at
// unit boundaries feed disjoint cells, so they share the cells safely.
class lse_feed {
 public:
  lse_feed(const geometry& g, dtype type, double r, lse_cell* cells, std::uint64_t position)
      : type_(type), r_(r), cells_(cells), walk_(g, position) {}

  void consume(std::span<const std::byte> block) {
    visit_dtype(type_, [&]<class T>(std::type_identity<T>) {
      for (const T& element : elements_of<T>(block)) {
        const double y = r_ * to_double(element);
        walk_.visit_cells([&](std::uint64_t cell) { fold(cells_[cell], y); });
        walk_.advance();
      }
    });
  }

 private:
  dtype type_;
  double r_;
  lse_cell* cells_;
  cell_walk walk_;
};

class lse_kernel final : public pooler::kernel {
 public:
  lse_kernel(const tensor_info& input, const pool_request& request)
      : g_(make_geometry(input, request)),
        type_(*input.type),
        r_(request.lse_r),
        output_type_(request.output_type),
        cells_(g_.output_count),
        feed_(g_, type_, r_, cells_.data(), 0) {}

  void consume(std::span<const std::byte> block) override { feed_.consume(block); }

  std::unique_ptr<pooler::stream> open_stream(std::uint64_t first) override {
    return std::make_unique<feed_stream<lse_feed>>(lse_feed(g_, type_, r_, cells_.data(), first));
  }

  std::uint64_t unit_length() const override { return g_.unit_length; }

  pooled_tensor finish() override {
    paged_vector<double> values(g_.output_count);
    finish_into(values.data());
    return narrowed(g_.output_shape, values.data(), output_type_);
  }

  // (shift + log(sum / count)) / r; every NaN as the one quiet NaN.
  void finish_into(double* values) override {
    std::vector<std::uint64_t> index(g_.output_shape.size());
    for (std::uint64_t cell = 0; cell < g_.output_count; ++cell) {
      const lse_cell& c = cells_[cell];
      const double nan = std::numeric_limits<double>::quiet_NaN();
      values[cell] = std::isnan(c.sum)     ? nan
                     : std::isinf(c.shift) ? c.shift / r_
                                           : (c.shift + std::log(c.sum / window_size(index))) / r_;
      for (std::size_t l = index.size(); l-- > 0;) {
        if (++index[l] < g_.output_shape[l]) break;
        index[l] = 0;
      }
    }
  }

 private:
  // The number of elements in the window of the cell at `index` (layout
  // order).
  double window_size(const std::vector<std::uint64_t>& index) const {
    double size = 1;
    for (std::size_t s = 0; s < g_.spatial_axes.size(); ++s) {
      size *= static_cast<double>(g_.windows[s].size(index[g_.spatial_axes[s]]));
    }
    return size;
  }

  geometry g_;
  dtype type_;
  double r_;
  dtype output_type_;
  std::vector<lse_cell> cells_;
  lse_feed feed_;
};

}  // namespace

std::unique_ptr<pooler::kernel> make_lse_kernel(const tensor_info& input,
                                                const pool_request& request) {
  return std::make_unique<lse_kernel>(input, request);
}

}  // namespace featpool
