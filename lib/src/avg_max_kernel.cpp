// avgmax and catavgmax (timm's adaptive_avgmax_pool2d and
// adaptive_catavgmax_pool2d on any layout): an average and a maximum fed
// the same blocks, so the input is read once, each computed exactly as
// --op avg and --op max compute it, then combined in float64 and rounded
// once to the output dtype.

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "fanout_stream.hpp"
#include "pool_kernel.hpp"

#include "featpool/element.hpp"

namespace featpool {
namespace {

// Cells combined at a time: 256 KiB of averages and of maxima.
constexpr std::uint64_t kChunkCells = std::uint64_t{1} << 15;

class avg_max_kernel final : public pooler::kernel {
 public:
  avg_max_kernel(const tensor_info& input, const pool_request& request)
      : op_(request.op),
        channel_axis_(request.axes.channel_axis),
        output_type_(request.output_type),
        shape_(pooled_shape(input.shape, part(request, pool_op::avg))),
        avg_(make_window_kernel(input, part(request, pool_op::avg))),
        max_(make_window_kernel(input, part(request, pool_op::max))) {
    if (op_ == pool_op::catavgmax && !channel_axis_) {
      throw std::logic_error("catavgmax: the layout has no channel axis");
    }
  }

  void consume(std::span<const std::byte> block) override {
    avg_->consume(block);
    max_->consume(block);
  }

  std::unique_ptr<pooler::stream> open_stream(std::uint64_t first) override {
    return std::make_unique<fanout_stream>(avg_->open_stream(first), max_->open_stream(first));
  }

  std::uint64_t unit_length() const override { return avg_->unit_length(); }

  // Straight into the output dtype: a float64 copy of the whole output
  // would cost its page faults for nothing.
  pooled_tensor finish() override {
    pooled_tensor out;
    out.type = output_type_;
    out.shape = shape_;
    if (op_ == pool_op::catavgmax) out.shape[*channel_axis_] *= 2;
    out.data.resize(cell_count(out.shape) * dtype_size(out.type));
    visit_dtype(out.type, [&]<class Out>(std::type_identity<Out>) {
      auto* target = reinterpret_cast<Out*>(out.data.data());
      combine([&](std::uint64_t i, double value) { target[i] = narrow<Out>(value); });
    });
    return out;
  }

  void finish_into(double* values) override {
    combine([&](std::uint64_t i, double value) { values[i] = value; });
  }

 private:
  // Finishes the average and the maximum and hands store(i, value) every
  // cell of the output, in float64. A chunk of cells at a time: whole
  // float64 copies of both would cost their page faults for nothing.
  template <class Store>
  void combine(Store store) {
    const std::uint64_t count = cell_count(shape_);
    // On the channel axis, every run of C averages is followed by its C
    // maxima: the slower axes give the runs, C and the faster ones their
    // length.
    std::uint64_t run = 1;
    if (op_ == pool_op::catavgmax) {
      for (std::size_t l = *channel_axis_; l < shape_.size(); ++l) run *= shape_[l];
    }
    const std::uint64_t chunk = std::min(count, kChunkCells);
    std::vector<double> averages(chunk), maxima(chunk);
    for (std::uint64_t first = 0; first < count; first += chunk) {
      const std::uint64_t n = std::min(chunk, count - first);
      avg_->finish_range(averages.data(), first, n);
      max_->finish_range(maxima.data(), first, n);
      for (std::uint64_t i = 0; i < n; ++i) {
        const std::uint64_t cell = first + i;
        if (op_ == pool_op::avgmax) {
          // timm's 0.5 * (x_avg + x_max); every NaN as the one quiet NaN,
          // as finish_into gives the others.
          double value = 0.5 * (averages[i] + maxima[i]);
          store(cell, std::isnan(value) ? std::numeric_limits<double>::quiet_NaN() : value);
        } else {
          const std::uint64_t r = cell / run, k = cell % run;
          store(2 * r * run + k, averages[i]);
          store((2 * r + 1) * run + k, maxima[i]);
        }
      }
    }
    avg_.reset();
    max_.reset();
  }

  // The average or the maximum of the same windows, kept in float64.
  static pool_request part(const pool_request& request, pool_op op) {
    pool_request one = request;
    one.op = op;
    one.output_type = dtype::float64;
    return one;
  }

  pool_op op_;
  std::optional<std::size_t> channel_axis_;
  dtype output_type_;
  std::vector<std::uint64_t> shape_;  // of the average and of the maximum
  std::unique_ptr<window_kernel> avg_;
  std::unique_ptr<window_kernel> max_;
};

}  // namespace

std::unique_ptr<pooler::kernel> make_avg_max_kernel(const tensor_info& input,
                                                    const pool_request& request) {
  return std::make_unique<avg_max_kernel>(input, request);
}

}  // namespace featpool
