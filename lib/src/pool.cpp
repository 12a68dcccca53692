#include "featpool/pool.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include <fmt/format.h>
#include <oneapi/tbb/parallel_for.h>

#include "featpool/element.hpp"
#include "featpool/error.hpp"
#include "featpool/windows.hpp"

namespace featpool {
namespace {

// Blocks smaller than this are pooled on the calling thread: handing them
// to workers costs more than it saves.
constexpr std::uint64_t kParallelElements = std::uint64_t{1} << 16;

// One axis of the input, in the order its elements are stored.
struct memory_axis {
  std::uint64_t extent = 0;
  std::uint64_t output_stride = 0;        // this axis's stride in the C-order output
  const axis_windows* windows = nullptr;  // spatial axes only
};

// Everything about a pooling job that does not depend on the dtype.
struct geometry {
  std::vector<axis_windows> windows;  // one per spatial axis, in layout order
  std::vector<memory_axis> axes;      // slowest first
  std::vector<std::uint64_t> output_shape;
  std::uint64_t output_count = 1;
  std::vector<std::uint64_t> output_strides;  // per layout axis
  std::vector<std::size_t> spatial_axes;      // layout positions of the spatial axes
  // Work splits into units that feed disjoint cells: the elements sharing
  // every coordinate of the leading non-spatial axes in storage order
  // (planes of NCHW). 0 when storage starts with a spatial axis.
  std::uint64_t unit_length = 0;
  // Channels-last storage: the fastest axis is not spatial, so its lanes
  // feed disjoint cells and can be split between threads instead.
  bool lanes_split = false;
  // Global pooling over the fastest axes with the slower ones passed
  // through (NCHW to (N, C, 1, 1)): every run of this many consecutive
  // elements feeds one cell, the axes before tail_begin say which. 0 when
  // the storage order is not of that form.
  std::uint64_t tail_length = 0;
  std::size_t tail_begin = 0;
};

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
  for (std::size_t s = 0; s < axes.spatial_axes.size(); ++s) {
    windows_of[axes.spatial_axes[s]] = &g.windows[s];
  }
  // Fortran order is C order with the axes reversed.
  for (std::size_t m = 0; m < rank; ++m) {
    std::size_t l = input.order == memory_order::c ? m : rank - 1 - m;
    g.axes.push_back({input.shape[l], g.output_strides[l], windows_of[l]});
  }
  std::size_t prefix = 0;
  while (prefix < rank && g.axes[prefix].windows == nullptr) ++prefix;
  if (prefix > 0) {
    g.unit_length = 1;
    for (std::size_t m = prefix; m < rank; ++m) g.unit_length *= g.axes[m].extent;
  }
  g.lanes_split = g.axes.back().windows == nullptr;
  std::size_t tail_begin = rank;
  while (tail_begin > 0 && g.axes[tail_begin - 1].windows &&
         g.axes[tail_begin - 1].windows->output_length == 1) {
    --tail_begin;
  }
  bool outer_passed_through = tail_begin == prefix;
  if (tail_begin < rank && outer_passed_through) {
    g.tail_begin = tail_begin;
    g.tail_length = 1;
    for (std::size_t m = tail_begin; m < rank; ++m) g.tail_length *= g.axes[m].extent;
  }
  return g;
}

// The number of input elements in each output cell's window, for averages.
std::vector<double> window_counts(const geometry& g) {
  // Windows of one size on every axis (global pooling, or sizes that divide
  // the input): one count for all cells.
  double common = 1.0;
  bool uniform = true;
  for (const auto& w : g.windows) {
    for (std::uint64_t i = 1; i < w.output_length; ++i) uniform = uniform && w.size(i) == w.size(0);
    common *= static_cast<double>(w.size(0));
  }
  if (uniform) return std::vector<double>(g.output_count, common);
  std::vector<double> counts(g.output_count, 1.0);
  for (std::size_t s = 0; s < g.spatial_axes.size(); ++s) {
    std::size_t l = g.spatial_axes[s];
    std::uint64_t stride = g.output_strides[l];
    std::uint64_t extent = g.output_shape[l];
    for (std::uint64_t cell = 0; cell < g.output_count; ++cell) {
      counts[cell] *= static_cast<double>(g.windows[s].size((cell / stride) % extent));
    }
  }
  return counts;
}

template <class T>
constexpr bool kIsFloating = std::is_floating_point_v<T> || std::is_same_v<T, float16_bits>;

// What a cell accumulates in: sums in double whatever the input; maxima in
// the input's own type, which compares exactly (halves widen to double).
template <class T, pool_op Op>
using accumulator_t =
    std::conditional_t<Op == pool_op::avg || std::is_same_v<T, float16_bits>, double, T>;

template <class T>
auto widen(T value) {
  if constexpr (std::is_same_v<T, float16_bits>) {
    return to_double(value);
  } else {
    return value;
  }
}

template <pool_op Op, class Acc, class T>
inline void combine(Acc& cell, T element) {
  if constexpr (Op == pool_op::avg) {
    cell += to_double(element);
  } else if constexpr (kIsFloating<T>) {
    // PyTorch's rule: NaN wins, so a NaN anywhere in the window is the max.
    auto value = widen(element);
    if (value > cell || std::isnan(value)) cell = value;
  } else {
    if (element > cell) cell = element;
  }
}

template <class Acc>
Acc initial_value(pool_op op) {
  if (op == pool_op::avg) return Acc{0};
  if constexpr (std::is_floating_point_v<Acc>) return -std::numeric_limits<Acc>::infinity();
  return std::numeric_limits<Acc>::lowest();
}

template <class Out, class Acc>
Out narrow(Acc value) {
  if constexpr (std::is_same_v<Out, float16_bits>) {
    return to_float16(static_cast<double>(value));
  } else {
    return static_cast<Out>(value);
  }
}

}  // namespace

class pooler::kernel {
 public:
  virtual ~kernel() = default;
  virtual void consume(std::span<const std::byte> block) = 0;
  virtual pooled_tensor finish() = 0;
};

namespace {

template <class T, pool_op Op>
class typed_kernel final : public pooler::kernel {
  using acc_t = accumulator_t<T, Op>;

 public:
  typed_kernel(geometry g, const pool_request& request)
      : g_(std::move(g)),
        cells_(g_.output_count, initial_value<acc_t>(Op)),
        output_type_(request.output_type),
        threads_(std::max(1, request.threads)) {}

  void consume(std::span<const std::byte> block) override {
    auto values = elements_of<T>(block);
    std::uint64_t count = values.size();
    std::uint64_t all_lanes = g_.axes.back().extent;
    if (threads_ == 1 || count < kParallelElements) {
      process(values.data(), position_, count, 0, all_lanes);
    } else if (g_.unit_length != 0 &&
               count / g_.unit_length >= static_cast<std::uint64_t>(threads_)) {
      split_by_units(values.data(), count);
    } else if (g_.lanes_split && all_lanes >= static_cast<std::uint64_t>(threads_)) {
      run_parallel([&](std::uint64_t t, std::uint64_t parts) {
        process(values.data(), position_, count, all_lanes * t / parts,
                all_lanes * (t + 1) / parts);
      });
    } else {
      process(values.data(), position_, count, 0, all_lanes);
    }
    position_ += count;
  }

  pooled_tensor finish() override {
    pooled_tensor out;
    out.shape = g_.output_shape;
    out.type = output_type_;
    out.data.resize(g_.output_count * dtype_size(output_type_));
    std::vector<double> counts;
    if constexpr (Op == pool_op::avg) counts = window_counts(g_);
    visit_dtype(output_type_, [&]<class Out>(std::type_identity<Out>) {
      auto* target = reinterpret_cast<Out*>(out.data.data());
      for (std::uint64_t cell = 0; cell < g_.output_count; ++cell) {
        if constexpr (Op == pool_op::avg) {
          target[cell] = narrow<Out>(cells_[cell] / counts[cell]);
        } else {
          target[cell] = narrow<Out>(cells_[cell]);
        }
      }
    });
    return out;
  }

 private:
  // Runs the parts in the caller's arena, so a kernel inside the batch
  // executor shares its workers instead of competing for them.
  template <class F>
  void run_parallel(F&& part) {
    auto parts = static_cast<std::uint64_t>(threads_);
    tbb::parallel_for(std::uint64_t{0}, parts, [&](std::uint64_t t) { part(t, parts); });
  }

  // Splits a block at unit boundaries: parts then feed disjoint cells, and
  // each cell still sees its elements in storage order.
  void split_by_units(const T* data, std::uint64_t count) {
    std::uint64_t unit = g_.unit_length;
    std::uint64_t all_lanes = g_.axes.back().extent;
    auto boundary = [&](std::uint64_t t, std::uint64_t parts) {
      if (t == parts) return count;
      std::uint64_t target = position_ + count * t / parts;
      std::uint64_t aligned = (target + unit - 1) / unit * unit;
      return std::min(count, aligned - position_);
    };
    run_parallel([&](std::uint64_t t, std::uint64_t parts) {
      std::uint64_t begin = t == 0 ? 0 : boundary(t, parts);
      std::uint64_t end = boundary(t + 1, parts);
      if (begin < end) process(data + begin, position_ + begin, end - begin, 0, all_lanes);
    });
  }

  // Pools `count` elements starting at storage index `start`, touching only
  // the fastest axis's lanes in [lane_begin, lane_end) when it is not
  // spatial.
  void process(const T* data, std::uint64_t start, std::uint64_t count, std::uint64_t lane_begin,
               std::uint64_t lane_end) {
    if (g_.tail_length != 0) return process_tail(data, start, count);
    const std::size_t rank = g_.axes.size();
    std::vector<std::uint64_t> coords(rank);
    for (std::size_t m = rank; m-- > 0;) {
      coords[m] = start % g_.axes[m].extent;
      start /= g_.axes[m].extent;
    }
    const memory_axis& inner = g_.axes.back();
    std::vector<std::uint64_t> bases;
    std::vector<std::uint64_t> expanded;
    acc_t* cells = cells_.data();
    for (std::uint64_t i = 0; i < count;) {
      std::uint64_t x = coords.back();
      std::uint64_t run = std::min(count - i, inner.extent - x);
      row_bases(coords, bases, expanded);
      const T* row = data + i;
      if (inner.windows) {
        // Window by window over the row: each cell still takes its
        // elements left to right.
        const auto& w = *inner.windows;
        std::uint64_t first = w.first_window[x];
        std::uint64_t last = w.last_window[x + run - 1];
        for (auto base : bases) {
          acc_t* out = cells + base;
          for (std::uint64_t win = first; win <= last; ++win) {
            std::uint64_t lo = std::max(w.start[win], x) - x;
            std::uint64_t hi = std::min(w.end[win], x + run) - x;
            acc_t cell = out[win * inner.output_stride];
            for (std::uint64_t e = lo; e < hi; ++e) combine<Op>(cell, row[e]);
            out[win * inner.output_stride] = cell;
          }
        }
      } else {
        std::uint64_t lo = std::max(x, lane_begin);
        std::uint64_t hi = std::min(x + run, lane_end);
        for (auto base : bases) {
          acc_t* out = cells + base;
          for (std::uint64_t lane = lo; lane < hi; ++lane) {
            combine<Op>(out[lane * inner.output_stride], row[lane - x]);
          }
        }
      }
      i += run;
      coords.back() += run;
      for (std::size_t m = rank - 1; m > 0 && coords[m] == g_.axes[m].extent; --m) {
        coords[m] = 0;
        ++coords[m - 1];
      }
    }
  }

  // Global pooling over the tail (see geometry::tail_length). Four runs
  // fold at once in separate dependency chains, each still left to right,
  // so the processor overlaps their additions.
  void process_tail(const T* data, std::uint64_t start, std::uint64_t count) {
    const std::uint64_t tail = g_.tail_length;
    acc_t* cells = cells_.data();
    while (count > 0) {
      std::uint64_t run = start / tail;
      std::uint64_t offset = start % tail;
      std::uint64_t used;
      if (offset == 0 && count >= 4 * tail) {
        acc_t& c0 = cells[cell_of_run(run)];
        acc_t& c1 = cells[cell_of_run(run + 1)];
        acc_t& c2 = cells[cell_of_run(run + 2)];
        acc_t& c3 = cells[cell_of_run(run + 3)];
        acc_t a0 = c0, a1 = c1, a2 = c2, a3 = c3;
        const T* p = data;
        for (std::uint64_t e = 0; e < tail; ++e) {
          combine<Op>(a0, p[e]);
          combine<Op>(a1, p[e + tail]);
          combine<Op>(a2, p[e + 2 * tail]);
          combine<Op>(a3, p[e + 3 * tail]);
        }
        c0 = a0, c1 = a1, c2 = a2, c3 = a3;
        used = 4 * tail;
      } else {
        used = std::min(tail - offset, count);
        acc_t& cell = cells[cell_of_run(run)];
        acc_t a = cell;
        for (std::uint64_t e = 0; e < used; ++e) combine<Op>(a, data[e]);
        cell = a;
      }
      data += used;
      start += used;
      count -= used;
    }
  }

  // The cell the tail run with this index feeds.
  std::uint64_t cell_of_run(std::uint64_t run) const {
    std::uint64_t cell = 0;
    for (std::size_t m = g_.tail_begin; m-- > 0;) {
      cell += run % g_.axes[m].extent * g_.axes[m].output_stride;
      run /= g_.axes[m].extent;
    }
    return cell;
  }

  // The output offsets a row of the fastest axis feeds, from the windows
  // that cover its coordinates on every slower axis.
  void row_bases(const std::vector<std::uint64_t>& coords, std::vector<std::uint64_t>& bases,
                 std::vector<std::uint64_t>& expanded) const {
    bases.assign(1, 0);
    for (std::size_t m = 0; m + 1 < coords.size(); ++m) {
      const memory_axis& axis = g_.axes[m];
      if (!axis.windows) {
        for (auto& base : bases) base += coords[m] * axis.output_stride;
        continue;
      }
      std::uint64_t first = axis.windows->first_window[coords[m]];
      std::uint64_t last = axis.windows->last_window[coords[m]];
      expanded.clear();
      for (auto base : bases) {
        for (std::uint64_t win = first; win <= last; ++win) {
          expanded.push_back(base + win * axis.output_stride);
        }
      }
      bases.swap(expanded);
    }
  }

  geometry g_;
  std::vector<acc_t> cells_;
  dtype output_type_;
  int threads_;
  std::uint64_t position_ = 0;  // storage index of the next element
};

template <pool_op Op>
std::unique_ptr<pooler::kernel> make_kernel(dtype input, geometry g, const pool_request& request) {
  return visit_dtype(input, [&]<class T>(std::type_identity<T>) -> std::unique_ptr<pooler::kernel> {
    return std::make_unique<typed_kernel<T, Op>>(std::move(g), request);
  });
}

}  // namespace

pool_op parse_pool_op(std::string_view text) {
  if (text == "avg") return pool_op::avg;
  if (text == "max") return pool_op::max;
  throw usage_error(fmt::format("--op: '{}': expected avg or max", text));
}

std::string_view pool_op_name(pool_op op) { return op == pool_op::avg ? "avg" : "max"; }

dtype pooled_dtype(pool_op op, dtype input, std::optional<dtype> requested) {
  if (requested) return *requested;
  if (input == dtype::float64) return dtype::float64;
  bool exact = input != dtype::float16 && input != dtype::float32;
  if (op == pool_op::max && exact) return input;
  return dtype::float32;
}

std::vector<std::uint64_t> pooled_shape(const std::vector<std::uint64_t>& input_shape,
                                        const pool_request& request) {
  auto shape = input_shape;
  for (std::size_t s = 0; s < request.axes.spatial_axes.size(); ++s) {
    shape[request.axes.spatial_axes[s]] = request.output_spatial[s];
  }
  return shape;
}

std::vector<std::uint64_t> flattened_shape(const std::vector<std::uint64_t>& shape,
                                           const layout& axes) {
  std::uint64_t rest = 1;
  for (std::size_t l = 0; l < shape.size(); ++l) {
    if (l != axes.batch_axis) rest *= shape[l];
  }
  if (!axes.batch_axis) return {rest};
  return {shape[*axes.batch_axis], rest};
}

void flatten(pooled_tensor& tensor, const layout& axes) {
  auto shape = tensor.shape;
  tensor.shape = flattened_shape(shape, axes);
  if (!axes.batch_axis || *axes.batch_axis == 0) return;
  // N is inside the layout (e.g. CNHW): gather each sample's values, in
  // layout order, behind one another.
  std::size_t n_axis = *axes.batch_axis;
  std::uint64_t outer = 1, inner = 1;
  for (std::size_t l = 0; l < n_axis; ++l) outer *= shape[l];
  for (std::size_t l = n_axis + 1; l < shape.size(); ++l) inner *= shape[l];
  std::uint64_t samples = shape[n_axis];
  std::size_t item = dtype_size(tensor.type);
  std::vector<std::byte> reordered(tensor.data.size());
  for (std::uint64_t o = 0; o < outer; ++o) {
    for (std::uint64_t n = 0; n < samples; ++n) {
      auto from = ((o * samples + n) * inner) * item;
      auto to = ((n * outer + o) * inner) * item;
      std::copy_n(tensor.data.data() + from, inner * item, reordered.data() + to);
    }
  }
  tensor.data = std::move(reordered);
}

pooler::pooler(const tensor_info& input, const pool_request& request) {
  auto g = make_geometry(input, request);
  kernel_ = request.op == pool_op::avg
                ? make_kernel<pool_op::avg>(*input.type, std::move(g), request)
                : make_kernel<pool_op::max>(*input.type, std::move(g), request);
}

pooler::~pooler() = default;

void pooler::consume(std::span<const std::byte> block) { kernel_->consume(block); }

pooled_tensor pooler::finish() { return kernel_->finish(); }

}  // namespace featpool
