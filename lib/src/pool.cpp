#include "featpool/pool.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <mutex>
#include <type_traits>
#include <unordered_map>

#include "argmax_kernel.hpp"
#include "fanout_stream.hpp"
#include "kernels/column_kernels.hpp"
#include "lazy_cells.hpp"
#include "pool_geometry.hpp"
#include "pool_kernel.hpp"
#include <fmt/format.h>
#include <oneapi/tbb/parallel_for.h>

#include "featpool/element.hpp"
#include "featpool/error.hpp"
#include "featpool/windows.hpp"

namespace featpool {
namespace {

using kernels::lane_sums;
using kernels::lane_total;

// Blocks smaller than this are pooled on the calling thread: handing them
// to workers costs more than it saves.
constexpr std::uint64_t kParallelElements = std::uint64_t{1} << 16;

// The number of input elements in each output cell's window, for averages:
// the counts of the cells from the first spatial axis (in layout order) on,
// which repeat for every combination of the axes before it. Small, however
// many cells there are: (C, 7, 7) for NHWC at 7×7, one value when every
// window has the same size.
std::vector<double> window_count_period(const geometry& g) {
  double common = 1.0;
  bool uniform = true;
  for (const auto& w : g.windows) {
    for (std::uint64_t i = 1; i < w.output_length; ++i) uniform = uniform && w.size(i) == w.size(0);
    common *= static_cast<double>(w.size(0));
  }
  if (uniform) return {common};
  // Axis by axis in layout order, each cell's count is the count of its
  // prefix times its window's size on this axis.
  std::vector<const axis_windows*> windows_of(g.output_shape.size(), nullptr);
  for (std::size_t s = 0; s < g.spatial_axes.size(); ++s)
    windows_of[g.spatial_axes[s]] = &g.windows[s];
  const std::size_t first = *std::min_element(g.spatial_axes.begin(), g.spatial_axes.end());
  std::vector<double> counts{1.0};
  for (std::size_t l = first; l < g.output_shape.size(); ++l) {
    std::vector<double> longer;
    longer.reserve(counts.size() * g.output_shape[l]);
    for (double prefix : counts) {
      for (std::uint64_t i = 0; i < g.output_shape[l]; ++i) {
        longer.push_back(windows_of[l] ? prefix * static_cast<double>(windows_of[l]->size(i))
                                       : prefix);
      }
    }
    counts.swap(longer);
  }
  return counts;
}

// Element boundaries that cut `count` elements starting at storage index
// `position` into `parts` ranges, every inner cut on a unit boundary.
std::vector<std::uint64_t> unit_cuts(std::uint64_t position, std::uint64_t count,
                                     std::uint64_t unit, std::uint64_t parts) {
  std::vector<std::uint64_t> cuts(parts + 1, count);
  cuts[0] = 0;
  for (std::uint64_t t = 1; t < parts; ++t) {
    std::uint64_t target = position + count * t / parts;
    std::uint64_t aligned = (target + unit - 1) / unit * unit;
    cuts[t] = std::min(count, aligned - position);
  }
  return cuts;
}

// Ops that add their windows up (gem adds powers of its elements); the
// others take an extreme.
constexpr bool sums(pool_op op) {
  return op == pool_op::avg || op == pool_op::sum || op == pool_op::gem;
}

// Ops that divide their sums by the window's size.
constexpr bool averages(pool_op op) { return op == pool_op::avg || op == pool_op::gem; }

// PyTorch's max and min: NaN wins, so a NaN anywhere in the window is the
// result.
template <pool_op Op, class M>
void fold_extreme(M& cell, M value) {
  bool beats = Op == pool_op::min ? value < cell : value > cell;
  if constexpr (std::is_floating_point_v<M>) {
    if (beats || std::isnan(value)) cell = value;
  } else {
    if (beats) cell = value;
  }
}

template <class Acc>
Acc initial_value(pool_op op) {
  if (sums(op)) return Acc{0};
  bool min = op == pool_op::min;
  if constexpr (std::is_floating_point_v<Acc>) {
    return min ? std::numeric_limits<Acc>::infinity() : -std::numeric_limits<Acc>::infinity();
  }
  return min ? std::numeric_limits<Acc>::max() : std::numeric_limits<Acc>::lowest();
}

}  // namespace

namespace {

// The order every cell's elements are combined in, which fixes its bits:
//
// - Global pooling of planar storage whose trailing axes are all spatial
//   (NCHW to (N, C, 1, 1)): the elements of each cell, in memory order, are
//   dealt to kLanes partial sums (element k to lane k mod kLanes), which
//   are added pairwise.
// - Other planar storage (the fastest axis is spatial, as in NCHW): a cell's
//   window is a set of rows along that axis. Each column of the window is
//   summed over its rows in storage order; the column sums are then dealt,
//   left to right, to kLanes partial sums (column k to lane k mod kLanes),
//   which are added pairwise. A window of one row deals its elements to
//   the lanes directly, which gives the same sums.
// - Channels fastest (NHWC): every cell folds its elements in storage
//   order; the vector lanes are the channels.
//
// Maxima take NaN if the window holds one, else the largest element.
template <class T, pool_op Op>
class typed_kernel final : public window_kernel {
  using acc_t = std::conditional_t<sums(Op), double, kernels::max_t<T>>;

  // A row-window combination of the planar path whose rows are not all in
  // yet, with its column sums (or maxima).
  struct open_base {
    std::uint64_t rows_seen = 0;
    std::vector<acc_t> columns;
  };

  // The cells a row feeds: the windows covering its coordinates on every
  // slower axis, as an output offset, and how many rows those windows hold.
  struct base_ref {
    std::uint64_t offset;
    std::uint64_t rows;
  };

  // Where one stream of consecutive elements stands.
  struct stream_state {
    std::uint64_t position = 0;  // storage index of the next element
    // Open bases by offset, unordered. Usually one or two (the row windows
    // of the plane being read), so a scan beats hashing.
    std::vector<std::uint64_t> open_offsets;
    std::vector<open_base> open;
    std::vector<std::vector<acc_t>> spare;  // column buffers to reuse
    // Lanes of windows cut by a block boundary, by cell (one-row windows).
    std::unordered_map<std::uint64_t, lane_sums> carried;
    std::vector<std::uint64_t> coords;
    std::vector<base_ref> bases, expanded;
    // The bases of the axes before the second-fastest, and the coordinates
    // they are for: they change once a plane of rows, not once a row.
    std::vector<base_ref> outer_bases;
    std::uint64_t outer_plane = std::numeric_limits<std::uint64_t>::max();
    std::vector<acc_t> gathered;                      // cells of a Fortran-order row
    std::vector<acc_t> unit_columns;                  // pool_whole_unit's column sums
    std::vector<std::uint64_t> window_of;             // and its windows, per axis
    std::array<acc_t, kernels::kLanes> flat_lanes{};  // process_flat's open unit
  };

  class typed_stream final : public pooler::stream {
   public:
    typed_stream(typed_kernel& kernel, std::uint64_t first) : kernel_(kernel) {
      state_.position = first;
    }
    void consume(std::span<const std::byte> block) override {
      auto values = elements_of<T>(block);
      kernel_.process(state_, values.data(), values.size(), 0, kernel_.lanes());
    }

   private:
    typed_kernel& kernel_;
    stream_state state_;
  };

 public:
  typed_kernel(geometry g, const pool_request& request)
      : g_(std::move(g)),
        cells_(g_.output_count, initial_value<acc_t>(Op)),
        output_type_(request.output_type),
        gem_(request.gem),
        threads_(std::max(1, request.threads)),
        columns_(kernels::active_kernels().of<T>()),
        extremes_(Op == pool_op::min ? columns_.min : columns_.max),
        window_totals_(kernels::active_kernels().window_totals) {
    // Units of spatial axes only, more than one (NCHW's planes, NCDHW's
    // volumes): a unit wholly inside a block is pooled window by window.
    const std::size_t first_spatial = g_.prefix;
    bool spatial_tail = true;
    for (std::size_t m = first_spatial; m < g_.axes.size(); ++m) {
      spatial_tail = spatial_tail && g_.axes[m].windows;
    }
    whole_units_ = spatial_tail && g_.unit_length != 0 && first_spatial + 1 < g_.axes.size();
    // Global pooling of such units (or of a tensor of spatial axes only).
    bool global = spatial_tail;
    flat_length_ = 1;
    for (std::size_t m = first_spatial; m < g_.axes.size(); ++m) {
      global = global && g_.axes[m].windows->output_length == 1;
      flat_length_ *= g_.axes[m].extent;
    }
    if (!global) flat_length_ = 0;
    unit_strides_.assign(g_.axes.size(), 1);
    for (std::size_t m = g_.axes.size() - 1; m-- > first_spatial;) {
      unit_strides_[m] = unit_strides_[m + 1] * g_.axes[m + 1].extent;
    }
    if (!g_.output_order) cells_.fill_to(g_.output_count);
  }

  void consume(std::span<const std::byte> block) override {
    auto values = elements_of<T>(block);
    const T* data = values.data();
    std::uint64_t count = values.size();
    if (count > 0) cells_.fill_to(cells_fed_by(main_.position + count));
    auto parts = static_cast<std::uint64_t>(threads_);
    if (threads_ == 1 || count < kParallelElements) {
      process(main_, data, count, 0, lanes());
    } else if (g_.unit_length != 0 && count / g_.unit_length >= parts) {
      split_by_units(data, count);
    } else if (!g_.planar && lanes() >= parts) {
      // Channels fastest: each worker takes a share of the channels of
      // every row, so they feed disjoint cells.
      std::uint64_t position = main_.position;
      tbb::parallel_for(std::uint64_t{0}, parts, [&](std::uint64_t t) {
        stream_state part;
        part.position = position;
        process(part, data, count, lanes() * t / parts, lanes() * (t + 1) / parts);
      });
      main_.position += count;
    } else {
      process(main_, data, count, 0, lanes());
    }
  }

  std::unique_ptr<pooler::stream> open_stream(std::uint64_t first) override {
    // Streams feed cells anywhere, each from its own range, and are opened
    // on their own threads: every cell gets its start value once, before
    // any stream can write one.
    std::call_once(filled_for_streams_, [&] { cells_.fill_to(g_.output_count); });
    return std::make_unique<typed_stream>(*this, first);
  }

  std::uint64_t unit_length() const override { return g_.unit_length; }

  pooled_tensor finish() override {
    pooled_tensor out;
    out.shape = g_.output_shape;
    out.type = output_type_;
    out.data.resize(g_.output_count * dtype_size(output_type_));
    visit_dtype(output_type_, [&]<class Out>(std::type_identity<Out>) {
      auto* target = reinterpret_cast<Out*>(out.data.data());
      for_each_result(0, g_.output_count,
                      [&](std::uint64_t cell, acc_t value) { target[cell] = narrow<Out>(value); });
    });
    return out;
  }

  void finish_into(double* values) override { finish_range(values, 0, g_.output_count); }

  void finish_range(double* values, std::uint64_t first, std::uint64_t count) override {
    for_each_result(first, first + count, [&](std::uint64_t cell, acc_t value) {
      values[cell - first] = static_cast<double>(value);
    });
  }

 private:
  // Hands the result of every cell in [begin, end), in order, to
  // take(cell, value): averages divided by their window's size,
  // generalized means their root taken.
  template <class Take>
  void for_each_result(std::uint64_t begin, std::uint64_t end, Take&& take) {
    cells_.fill_to(g_.output_count);
    std::vector<double> counts{1.0};
    if constexpr (averages(Op)) counts = window_count_period(g_);
    [[maybe_unused]] const double root = 1.0 / gem_.p;
    std::size_t period = begin % counts.size();
    for (std::uint64_t cell = begin; cell < end; ++cell) {
      acc_t value = cells_[cell];
      if constexpr (averages(Op)) value /= counts[period];
      if constexpr (Op == pool_op::gem) value = std::pow(value, root);
      // Which NaN an addition returns depends on the order of its
      // operands, which compilers choose freely: every NaN is written as
      // the one quiet NaN, so all instruction sets give the same bytes.
      if constexpr (std::is_floating_point_v<acc_t>) {
        if (std::isnan(value)) value = std::numeric_limits<acc_t>::quiet_NaN();
      }
      take(cell, value);
      if (++period == counts.size()) period = 0;
    }
  }

  std::uint64_t lanes() const { return g_.axes.back().extent; }

  // One past the last cell that the first `end` elements in storage order
  // feed, when storage is in the output's order (otherwise all of them).
  // Windows only move forward along an axis, so that is the last cell of
  // element end - 1, unless an earlier element on some axis reaches the
  // same window: elements before it on that axis had every coordinate on
  // the faster axes, so their last windows bound the rest.
  std::uint64_t cells_fed_by(std::uint64_t end) const {
    if (!g_.output_order) return g_.output_count;
    const std::size_t rank = g_.axes.size();
    std::vector<std::uint64_t> coords(rank);
    for (std::uint64_t rest = end - 1, m = rank; m-- > 0;) {
      coords[m] = rest % g_.axes[m].extent;
      rest /= g_.axes[m].extent;
    }
    std::uint64_t cell = 0;
    bool faster_axes_anywhere = false;
    for (std::size_t m = 0; m < rank; ++m) {
      const memory_axis& axis = g_.axes[m];
      std::uint64_t last = 0;
      if (faster_axes_anywhere) {
        last = (axis.windows ? axis.windows->output_length : axis.extent) - 1;
      } else if (axis.windows == nullptr) {
        last = coords[m];
      } else {
        last = axis.windows->last_window(coords[m]);
        faster_axes_anywhere = coords[m] > 0 && axis.windows->last_window(coords[m] - 1) == last;
      }
      cell += last * axis.output_stride;
    }
    return cell + 1;
  }

  // Splits a block at unit boundaries, one part per worker: parts then feed
  // disjoint cells. The first part continues the stream's open unit; the
  // last non-empty one leaves the unit the next block continues.
  void split_by_units(const T* data, std::uint64_t count) {
    auto parts = static_cast<std::uint64_t>(threads_);
    std::uint64_t position = main_.position;
    auto cuts = unit_cuts(position, count, g_.unit_length, parts);
    std::vector<stream_state> states(parts);
    states[0] = std::move(main_);
    for (std::uint64_t t = 1; t < parts; ++t) states[t].position = position + cuts[t];
    tbb::parallel_for(std::uint64_t{0}, parts, [&](std::uint64_t t) {
      if (cuts[t] < cuts[t + 1])
        process(states[t], data + cuts[t], cuts[t + 1] - cuts[t], 0, lanes());
    });
    std::uint64_t last = parts - 1;
    while (last > 0 && cuts[last] == cuts[last + 1]) --last;
    main_ = std::move(states[last]);
    main_.position = position + count;
  }

  // Pools `count` elements from the stream's position on, touching only
  // the fastest axis's lanes in [lane_begin, lane_end) when it is not
  // spatial.
  void process(stream_state& s, const T* data, std::uint64_t count, std::uint64_t lane_begin,
               std::uint64_t lane_end) {
    if (flat_length_ != 0) return process_flat(s, data, count);
    const std::size_t rank = g_.axes.size();
    const std::uint64_t width = lanes();
    auto& coords = s.coords;
    coords.assign(rank, 0);
    for (std::uint64_t rest = s.position, m = rank; m-- > 0;) {
      coords[m] = rest % g_.axes[m].extent;
      rest /= g_.axes[m].extent;
    }
    while (count > 0) {
      if (whole_units_ && s.position % g_.unit_length == 0 && count >= g_.unit_length) {
        pool_whole_unit(s, data, s.position / g_.unit_length);
        data += g_.unit_length;
        count -= g_.unit_length;
        s.position += g_.unit_length;
        next_unit(coords);
        continue;
      }
      std::uint64_t x = coords.back();
      std::uint64_t rows = 1;
      std::uint64_t length = std::min(width - x, count);
      if (x == 0 && count >= width) rows = std::min(count / width, rows_alike(coords));
      row_bases(s, coords);
      if (g_.planar) {
        planar_rows(s, data, x, length, rows);
      } else {
        channel_rows(s, data, x, length, rows, lane_begin, lane_end);
      }
      std::uint64_t used = rows == 1 ? length : rows * width;
      data += used;
      count -= used;
      s.position += used;
      if (x + length == width) next_row(coords, rows);
    }
  }

  // How many rows from these coordinates on share every window: the run
  // along the second-fastest axis with the same windows.
  std::uint64_t rows_alike(const std::vector<std::uint64_t>& coords) const {
    if (coords.size() < 2) return 1;
    const memory_axis& axis = g_.axes[coords.size() - 2];
    if (axis.windows == nullptr) return 1;
    std::uint64_t at = coords[coords.size() - 2];
    return axis.windows->same_windows_until(at) - at;
  }

  // Global pooling of units of spatial axes only: each unit's elements,
  // in memory order, are dealt to the lanes; whichever block or thread
  // holds them, an element's lane is its position in the unit mod kLanes.
  void process_flat(stream_state& s, const T* data, std::uint64_t count) {
    while (count > 0) {
      std::uint64_t unit = s.position / flat_length_;
      std::uint64_t offset = s.position % flat_length_;
      std::uint64_t n = std::min(count, flat_length_ - offset);
      if (offset == 0) s.flat_lanes.fill(initial_value<acc_t>(Op));
      if constexpr (sums(Op)) {
        add_lanes(s.flat_lanes, data, n, offset % kernels::kLanes);
      } else {
        extremes_.lanes(s.flat_lanes, data, n, offset % kernels::kLanes);
      }
      if (offset + n == flat_length_) {
        acc_t& cell = cells_[unit_base(unit)];
        if constexpr (sums(Op)) {
          cell = lane_total(s.flat_lanes);
        } else {
          cell = extremes_.narrow_window(s.flat_lanes.data(), kernels::kLanes);
        }
      }
      data += n;
      count -= n;
      s.position += n;
    }
  }

  // The output offset of a unit's first cell.
  std::uint64_t unit_base(std::uint64_t unit) const {
    std::uint64_t base = 0;
    for (std::size_t m = g_.prefix; m-- > 0;) {
      base += unit % g_.axes[m].extent * g_.axes[m].output_stride;
      unit /= g_.axes[m].extent;
    }
    return base;
  }

  // Moves the coordinates past one whole unit.
  void next_unit(std::vector<std::uint64_t>& coords) const {
    std::fill(coords.begin() + static_cast<std::ptrdiff_t>(g_.prefix), coords.end(), 0);
    for (std::size_t m = g_.prefix; m-- > 0;) {
      if (++coords[m] < g_.axes[m].extent) break;
      coords[m] = 0;
    }
  }

  // A unit of spatial axes only, all in `data`: for each combination of
  // windows on the slower spatial axes, its rows are summed column by
  // column (in memory order, as the row-by-row path does), then each window
  // along the fastest axis becomes its cell.
  void pool_whole_unit(stream_state& s, const T* data, std::uint64_t unit) {
    s.unit_columns.resize(lanes() + kernels::kLanes);
    pool_windows(s, data, g_.prefix, unit_base(unit), s.window_of);
  }

  // Chooses a window on each slower spatial axis in turn, from `axis` on.
  void pool_windows(stream_state& s, const T* data, std::size_t axis, std::uint64_t cell,
                    std::vector<std::uint64_t>& chosen) {
    if (axis + 1 == g_.axes.size()) {
      std::fill_n(s.unit_columns.begin(), lanes(), initial_value<acc_t>(Op));
      add_window_rows(s, data, g_.prefix, 0, chosen);
      reduce_columns(cell, s.unit_columns);
      return;
    }
    chosen.resize(g_.axes.size());
    const memory_axis& a = g_.axes[axis];
    for (std::uint64_t win = 0; win < a.windows->output_length; ++win) {
      chosen[axis] = win;
      pool_windows(s, data, axis + 1, cell + win * a.output_stride, chosen);
    }
  }

  // Adds the rows of the chosen windows to the unit's columns, in memory
  // order: the rows along the second-fastest axis are adjacent.
  void add_window_rows(stream_state& s, const T* data, std::size_t axis, std::uint64_t offset,
                       const std::vector<std::uint64_t>& chosen) {
    const axis_windows& w = *g_.axes[axis].windows;
    std::uint64_t start = w.start[chosen[axis]], end = w.end[chosen[axis]];
    if (axis + 2 == g_.axes.size()) {
      fold_rows(s.unit_columns.data(), data + offset + start * unit_strides_[axis], end - start,
                lanes(), lanes());
      return;
    }
    for (std::uint64_t c = start; c < end; ++c) {
      add_window_rows(s, data, axis + 1, offset + c * unit_strides_[axis], chosen);
    }
  }

  // Moves the coordinates past `rows` finished rows. (A block that ends
  // inside a row ends the loop; the next one counts afresh.)
  void next_row(std::vector<std::uint64_t>& coords, std::uint64_t rows) const {
    coords.back() = 0;
    if (coords.size() < 2) return;
    coords[coords.size() - 2] += rows;
    for (std::size_t m = coords.size() - 2; m > 0 && coords[m] == g_.axes[m].extent; --m) {
      coords[m] = 0;
      ++coords[m - 1];
    }
  }

  // The output offsets (and row counts) a row feeds, from the windows that
  // cover its coordinates on every slower axis.
  void row_bases(stream_state& s, const std::vector<std::uint64_t>& coords) const {
    if (coords.size() < 2) {
      s.bases.assign(1, {0, 1});
      return;
    }
    const std::size_t second = coords.size() - 2;
    // Which plane of rows (a combination of the slower coordinates) the
    // stream is in.
    const std::uint64_t plane = s.position / (g_.axes[second].extent * lanes());
    if (plane != s.outer_plane) {
      s.outer_bases.assign(1, {0, 1});
      for (std::size_t m = 0; m < second; ++m)
        expand_bases(s.outer_bases, s.expanded, m, coords[m]);
      s.outer_plane = plane;
    }
    s.bases = s.outer_bases;
    expand_bases(s.bases, s.expanded, second, coords[second]);
  }

  // Each base times the windows of axis m that cover coordinate `at`.
  void expand_bases(std::vector<base_ref>& bases, std::vector<base_ref>& expanded, std::size_t m,
                    std::uint64_t at) const {
    const memory_axis& axis = g_.axes[m];
    if (!axis.windows) {
      for (auto& base : bases) base.offset += at * axis.output_stride;
      return;
    }
    std::uint64_t first = axis.windows->first_window(at);
    std::uint64_t last = axis.windows->last_window(at);
    expanded.clear();
    for (auto base : bases) {
      for (std::uint64_t win = first; win <= last; ++win) {
        expanded.push_back(
            {base.offset + win * axis.output_stride, base.rows * axis.windows->size(win)});
      }
    }
    bases.swap(expanded);
  }

  // Planar storage: `rows` rows (or part of one row, from column x on) of
  // every base in s.bases.
  void planar_rows(stream_state& s, const T* data, std::uint64_t x, std::uint64_t length,
                   std::uint64_t rows) {
    const std::uint64_t width = lanes();
    for (const auto& base : s.bases) {
      if (base.rows == 1) {
        one_row_windows(s, base.offset, data, x, length);
        continue;
      }
      std::size_t at = open_base_index(s, base.offset);
      open_base& open = s.open[at];
      if constexpr (sums(Op)) {
        add_columns(open.columns.data() + x, data, rows, width, length);
      } else {
        extremes_.columns(open.columns.data() + x, data, rows, width, length);
      }
      if (x + length < width) continue;  // the rest of the row is in the next block
      open.rows_seen += rows;
      if (open.rows_seen < base.rows) continue;
      reduce_columns(base.offset, open.columns);
      s.spare.push_back(std::move(open.columns));
      s.open[at] = std::move(s.open.back());
      s.open.pop_back();
      s.open_offsets[at] = s.open_offsets.back();
      s.open_offsets.pop_back();
    }
  }

  // The open base at `offset`, opened (its columns cleared) if it was not.
  std::size_t open_base_index(stream_state& s, std::uint64_t offset) const {
    for (std::size_t i = s.open_offsets.size(); i-- > 0;) {
      if (s.open_offsets[i] == offset) return i;
    }
    open_base& open = s.open.emplace_back();
    s.open_offsets.push_back(offset);
    if (!s.spare.empty()) {
      open.columns = std::move(s.spare.back());
      s.spare.pop_back();
    }
    // Padded for the narrow_window_* kernels, which read kLanes columns.
    open.columns.assign(lanes() + kernels::kLanes, initial_value<acc_t>(Op));
    return s.open.size() - 1;
  }

  // A base's rows are all in: each window along the fastest axis becomes
  // its cell.
  void reduce_columns(std::uint64_t base, const std::vector<acc_t>& columns) {
    const memory_axis& inner = g_.axes.back();
    const axis_windows& w = *inner.windows;
    if constexpr (sums(Op)) {
      window_totals_(cells_.data() + base, inner.output_stride, columns.data(), w.start.data(),
                     w.end.data(), w.output_length);
    } else {
      extremes_.windows(cells_.data() + base, inner.output_stride, columns.data(), w.start.data(),
                        w.end.data(), w.output_length);
    }
  }

  // Windows one row tall (1-D inputs, or a spatial axis pooled to its own
  // length): elements go straight to the cells, no column buffer.
  void one_row_windows(stream_state& s, std::uint64_t base, const T* data, std::uint64_t x,
                       std::uint64_t length) {
    const memory_axis& inner = g_.axes.back();
    const axis_windows& w = *inner.windows;
    for (std::uint64_t win = w.first_window(x); win <= w.last_window(x + length - 1); ++win) {
      std::uint64_t lo = std::max(w.start[win], x);
      std::uint64_t hi = std::min(w.end[win], x + length);
      std::uint64_t cell = base + win * inner.output_stride;
      if constexpr (sums(Op)) {
        lane_sums lanes{};
        if (lo != w.start[win]) {  // the window began in an earlier block
          auto carried = s.carried.find(cell);
          lanes = carried->second;
          s.carried.erase(carried);
        }
        add_lanes(lanes, data + (lo - x), hi - lo, lo - w.start[win]);
        if (hi == w.end[win]) {
          cells_[cell] = lane_total(lanes);
        } else {
          s.carried.emplace(cell, lanes);
        }
      } else {
        for (std::uint64_t e = lo; e < hi; ++e)
          fold_extreme<Op>(cells_[cell], kernels::as_max(data[e - x]));
      }
    }
  }

  // Channels fastest: `rows` rows (or part of one) fold into their cells,
  // the channels in [lane_begin, lane_end) only.
  void channel_rows(stream_state& s, const T* data, std::uint64_t x, std::uint64_t length,
                    std::uint64_t rows, std::uint64_t lane_begin, std::uint64_t lane_end) {
    std::uint64_t lo = std::max(x, lane_begin);
    std::uint64_t hi = std::min(x + length, lane_end);
    if (lo >= hi) return;
    const std::uint64_t width = lanes();
    const std::uint64_t stride = g_.axes.back().output_stride;
    const T* first = data + (lo - x);
    for (const auto& base : s.bases) {
      acc_t* cells = cells_.data() + base.offset;
      if (stride == 1) {
        fold_rows(cells + lo, first, rows, width, hi - lo);
        continue;
      }
      // Fortran order: this axis's cells are apart in the output.
      auto& gathered = s.gathered;
      gathered.resize(hi - lo);
      for (std::uint64_t c = lo; c < hi; ++c) gathered[c - lo] = cells[c * stride];
      fold_rows(gathered.data(), first, rows, width, hi - lo);
      for (std::uint64_t c = lo; c < hi; ++c) cells[c * stride] = gathered[c - lo];
    }
  }

  void fold_rows(acc_t* cells, const T* rows, std::uint64_t count, std::uint64_t stride,
                 std::uint64_t width) const {
    if constexpr (sums(Op)) {
      add_columns(cells, rows, count, stride, width);
    } else {
      extremes_.columns(cells, rows, count, stride, width);
    }
  }

  // The sums' loops: of the elements, or of their powers for gem.
  void add_columns(double* sums, const T* rows, std::uint64_t count, std::uint64_t stride,
                   std::uint64_t width) const {
    if constexpr (Op == pool_op::gem) {
      columns_.sum_power_columns(sums, rows, count, stride, width, gem_);
    } else {
      columns_.sum_columns(sums, rows, count, stride, width);
    }
  }

  void add_lanes(lane_sums& lanes, const T* values, std::uint64_t count,
                 std::uint64_t phase) const {
    if constexpr (Op == pool_op::gem) {
      columns_.sum_power_lanes(lanes, values, count, phase, gem_);
    } else {
      columns_.sum_lanes(lanes, values, count, phase);
    }
  }

  geometry g_;
  lazy_cells<acc_t> cells_;
  std::once_flag filled_for_streams_;
  dtype output_type_;
  gem_params gem_;
  int threads_;
  const kernels::column_kernels<T>& columns_;
  const kernels::extreme_kernels<T>& extremes_;  // max's or min's
  decltype(kernels::kernel_set::window_totals) window_totals_;
  stream_state main_;  // the stream consume() feeds
  bool whole_units_ = false;
  std::uint64_t flat_length_ = 0;            // elements of a globally pooled unit, or 0
  std::vector<std::uint64_t> unit_strides_;  // per storage axis, within a unit
};

template <pool_op Op>
std::unique_ptr<window_kernel> make_kernel(dtype input, geometry g, const pool_request& request) {
  return visit_dtype(input, [&]<class T>(std::type_identity<T>) -> std::unique_ptr<window_kernel> {
    return std::make_unique<typed_kernel<T, Op>>(std::move(g), request);
  });
}

}  // namespace

pool_op parse_pool_op(std::string_view text) {
  for (pool_op op : {pool_op::avg, pool_op::max, pool_op::sum, pool_op::min, pool_op::avgmax,
                     pool_op::catavgmax, pool_op::gem, pool_op::lse}) {
    if (text == pool_op_name(op)) return op;
  }
  throw usage_error(
      fmt::format("--op: '{}': expected avg, max, sum, min, avgmax, catavgmax, gem or lse", text));
}

bool combines_avg_and_max(pool_op op) { return op == pool_op::avgmax || op == pool_op::catavgmax; }

std::string_view pool_op_name(pool_op op) {
  switch (op) {
    case pool_op::avg:
      return "avg";
    case pool_op::max:
      return "max";
    case pool_op::sum:
      return "sum";
    case pool_op::min:
      return "min";
    case pool_op::avgmax:
      return "avgmax";
    case pool_op::catavgmax:
      return "catavgmax";
    case pool_op::gem:
      return "gem";
    case pool_op::lse:
      return "lse";
  }
  return "?";
}

dtype pooled_dtype(pool_op op, dtype input, std::optional<dtype> requested, bool normalized) {
  if (requested) return *requested;
  if (input == dtype::float64) return dtype::float64;
  bool exact = input != dtype::float16 && input != dtype::float32;
  if ((op == pool_op::max || op == pool_op::min) && exact && !normalized) return input;
  // Sums of integers are kept in float64, exact up to 2^53 like the sum.
  if (op == pool_op::sum && exact) return dtype::float64;
  return dtype::float32;
}

std::vector<std::uint64_t> pooled_shape(const std::vector<std::uint64_t>& input_shape,
                                        const pool_request& request) {
  if (!request.pyramid.empty()) {
    // Each level flattened, their features side by side; a length past 64
    // bits saturates, which the 4 GiB cap refuses.
    std::uint64_t features = 0;
    for (const auto& level : request.pyramid) {
      auto flat =
          flattened_shape(pooled_shape(input_shape, pyramid_level(request, level)), request.axes);
      if (__builtin_add_overflow(features, flat.back(), &features)) features = UINT64_MAX;
    }
    if (!request.axes.batch_axis) return {features};
    return {input_shape[*request.axes.batch_axis], features};
  }
  auto shape = input_shape;
  for (std::size_t s = 0; s < request.axes.spatial_axes.size(); ++s) {
    shape[request.axes.spatial_axes[s]] = request.output_spatial[s];
  }
  // Average and maximum side by side on the channel axis (plan checks there
  // is one); a length past 64 bits saturates, which the 4 GiB cap refuses.
  if (request.op == pool_op::catavgmax && request.axes.channel_axis) {
    auto& channels = shape[*request.axes.channel_axis];
    if (__builtin_mul_overflow(channels, std::uint64_t{2}, &channels)) channels = UINT64_MAX;
  }
  return shape;
}

std::vector<std::uint64_t> flattened_shape(const std::vector<std::uint64_t>& shape,
                                           const layout& axes) {
  std::uint64_t rest = 1;
  for (std::size_t l = 0; l < shape.size(); ++l) {
    if (l != axes.batch_axis && __builtin_mul_overflow(rest, shape[l], &rest)) rest = UINT64_MAX;
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
  byte_buffer reordered(tensor.data.size());
  for (std::uint64_t o = 0; o < outer; ++o) {
    for (std::uint64_t n = 0; n < samples; ++n) {
      auto from = ((o * samples + n) * inner) * item;
      auto to = ((n * outer + o) * inner) * item;
      std::copy_n(tensor.data.data() + from, inner * item, reordered.data() + to);
    }
  }
  tensor.data = std::move(reordered);
}

std::unique_ptr<window_kernel> make_window_kernel(const tensor_info& input,
                                                  const pool_request& request) {
  auto g = make_geometry(input, request);
  switch (request.op) {
    case pool_op::avg:
      return make_kernel<pool_op::avg>(*input.type, std::move(g), request);
    case pool_op::max:
      return make_kernel<pool_op::max>(*input.type, std::move(g), request);
    case pool_op::sum:
      return make_kernel<pool_op::sum>(*input.type, std::move(g), request);
    case pool_op::min:
      return make_kernel<pool_op::min>(*input.type, std::move(g), request);
    case pool_op::gem:
      return make_kernel<pool_op::gem>(*input.type, std::move(g), request);
    case pool_op::avgmax:
    case pool_op::catavgmax:
    case pool_op::lse:
      break;
  }
  throw std::logic_error("make_window_kernel: an op made of other kernels");
}

std::unique_ptr<pooler::kernel> make_op_kernel(const tensor_info& input,
                                               const pool_request& request) {
  if (combines_avg_and_max(request.op)) return make_avg_max_kernel(input, request);
  if (request.op == pool_op::lse) return make_lse_kernel(input, request);
  return make_window_kernel(input, request);
}

pooler::pooler(const tensor_info& input, const pool_request& request)
    : kernel_(request.pyramid.empty() ? make_op_kernel(input, request)
                                      : make_pyramid_kernel(input, request)),
      shape_(pooled_shape(input.shape, request)),
      output_type_(request.output_type),
      normalize_(request.normalize) {
  // The vectors run along C, or over each sample: N's axis, which a
  // pyramid's flat output has first.
  normalize_axis_ = normalize_ == normalization::channels ? request.axes.channel_axis
                    : !request.pyramid.empty() && request.axes.batch_axis
                        ? std::optional<std::size_t>(0)
                        : request.axes.batch_axis;
  if (normalize_ == normalization::channels && !normalize_axis_) {
    throw std::logic_error("normalizing channels: the layout has no channel axis");
  }
  if (request.indices) {
    if (request.op != pool_op::max || !request.pyramid.empty()) {
      throw std::logic_error("indices: only of a maximum, without a pyramid");
    }
    argmax_ = make_argmax_kernel(input, request);
  }
}

pooler::~pooler() = default;

void pooler::consume(std::span<const std::byte> block) {
  kernel_->consume(block);
  if (argmax_) argmax_->consume(block);
}

std::vector<std::uint64_t> pooler::independent_ranges(std::uint64_t element_count,
                                                      int parts) const {
  std::uint64_t unit = kernel_->unit_length();
  if (unit == 0 || parts <= 1) return {0, element_count};
  auto cuts = unit_cuts(0, element_count, unit, static_cast<std::uint64_t>(parts));
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  return cuts;
}

std::unique_ptr<pooler::stream> pooler::open_stream(std::uint64_t first) {
  if (!argmax_) return kernel_->open_stream(first);
  // Both kernels have the geometry's units, so the ranges suit both.
  return std::make_unique<fanout_stream>(kernel_->open_stream(first), argmax_->open_stream(first));
}

pooled_tensor pooler::finish() {
  if (normalize_ == normalization::none) return kernel_->finish();
  // Normalized in float64, then rounded once.
  paged_vector<double> values(cell_count(shape_));
  kernel_->finish_into(values.data());
  normalize_l2(values.data(), shape_, normalize_axis_, normalize_);
  return narrowed(shape_, values.data(), output_type_);
}

pooled_tensor pooler::indices() {
  if (!argmax_) throw std::logic_error("indices: the request did not ask for them");
  auto indices = argmax_->finish();
  argmax_.reset();
  return indices;
}

}  // namespace featpool
