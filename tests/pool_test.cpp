#include "featpool/pool.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "featpool/element.hpp"
#include "featpool/error.hpp"
#include "featpool/windows.hpp"

namespace featpool {
namespace {

std::vector<std::uint64_t> first_windows(const axis_windows& w) {
  std::vector<std::uint64_t> first;
  for (std::uint64_t x = 0; x < w.input_length; ++x) first.push_back(w.first_window(x));
  return first;
}

std::vector<std::uint64_t> last_windows(const axis_windows& w) {
  std::vector<std::uint64_t> last;
  for (std::uint64_t x = 0; x < w.input_length; ++x) last.push_back(w.last_window(x));
  return last;
}

TEST_CASE("windows: PyTorch's rule, checked by hand for L=5 → S=3 and L=2 → S=5") {
  auto w = plan_axis(5, 3);
  // [floor(i·5/3), ceil((i+1)·5/3)): [0,2) [1,4) [3,5)
  CHECK(w.start == std::vector<std::uint64_t>{0, 1, 3});
  CHECK(w.end == std::vector<std::uint64_t>{2, 4, 5});
  CHECK(first_windows(w) == std::vector<std::uint64_t>{0, 0, 1, 1, 2});
  CHECK(last_windows(w) == std::vector<std::uint64_t>{0, 1, 1, 2, 2});
  auto up = plan_axis(2, 5);
  // Output longer than input: windows repeat elements.
  CHECK(up.start == std::vector<std::uint64_t>{0, 0, 0, 1, 1});
  CHECK(up.end == std::vector<std::uint64_t>{1, 1, 2, 2, 2});
  CHECK(first_windows(up) == std::vector<std::uint64_t>{0, 2});
  CHECK(last_windows(up) == std::vector<std::uint64_t>{2, 4});
  auto global = plan_axis(7, 1);
  CHECK(global.start == std::vector<std::uint64_t>{0});
  CHECK(global.end == std::vector<std::uint64_t>{7});
}

TEST_CASE(
    "windows: every window is non-empty, the windows cover the input, and each index finds its "
    "windows") {
  for (std::uint64_t in = 1; in <= 40; ++in) {
    for (std::uint64_t out = 1; out <= 40; ++out) {
      auto w = plan_axis(in, out);
      CHECK(w.start.front() == 0);
      CHECK(w.end.back() == in);
      // Each input index's windows and run, against the definitions.
      for (std::uint64_t x = 0; x < in; ++x) {
        std::uint64_t first = 0;
        while (w.end[first] <= x) ++first;
        std::uint64_t last = out - 1;
        while (w.start[last] > x) --last;
        CHECK(w.first_window(x) == first);
        CHECK(w.last_window(x) == last);
        std::uint64_t until = x + 1;
        while (until < in && w.first_window(until) == first && w.last_window(until) == last)
          ++until;
        CHECK(w.same_windows_until(x) == until);
      }
      for (std::uint64_t i = 0; i < out; ++i) {
        REQUIRE(w.start[i] < w.end[i]);
        // The integer formula agrees with the real-number one.
        CHECK(w.start[i] ==
              static_cast<std::uint64_t>(std::floor(double(i) * double(in) / double(out))));
        CHECK(w.end[i] ==
              static_cast<std::uint64_t>(std::ceil(double(i + 1) * double(in) / double(out))));
      }
    }
  }
}

// A reference that follows the definition literally: for each output cell,
// walk its window in layout order. For C-order inputs this is also storage
// order, so the kernel must agree bit for bit with the order pool.cpp
// promises: with a spatial last axis, column sums over the window's rows,
// then the columns dealt to 16 lanes added pairwise; otherwise one fold.
std::vector<double> reference_pool(const std::vector<double>& values,
                                   const std::vector<std::uint64_t>& shape, const layout& axes,
                                   const std::vector<std::uint64_t>& out_spatial, pool_op op) {
  pool_request request{op, axes, out_spatial, dtype::float64, 1, {}};
  auto out_shape = pooled_shape(shape, request);
  std::size_t rank = shape.size();
  std::vector<axis_windows> windows;
  for (std::size_t s = 0; s < axes.spatial_axes.size(); ++s) {
    windows.push_back(plan_axis(shape[axes.spatial_axes[s]], out_spatial[s]));
  }
  bool planar = axes.spatial_axes.back() == rank - 1;
  // Global pooling over trailing spatial axes deals the window's elements,
  // in memory order, to the lanes instead of summing columns first.
  bool global_tail =
      axes.spatial_axes.front() + axes.spatial_axes.size() == rank &&
      std::all_of(out_spatial.begin(), out_spatial.end(), [](auto s) { return s == 1; });
  std::uint64_t out_count = 1;
  for (auto e : out_shape) out_count *= e;
  std::vector<double> out(out_count);
  for (std::uint64_t cell = 0; cell < out_count; ++cell) {
    std::vector<std::uint64_t> index(rank);
    for (std::size_t l = rank, rest = cell; l-- > 0;) {
      index[l] = rest % out_shape[l];
      rest /= out_shape[l];
    }
    // Per axis, the input range this cell reads.
    std::vector<std::uint64_t> lo(rank), hi(rank);
    for (std::size_t l = 0; l < rank; ++l) {
      lo[l] = index[l];
      hi[l] = index[l] + 1;
    }
    for (std::size_t s = 0; s < axes.spatial_axes.size(); ++s) {
      std::size_t l = axes.spatial_axes[s];
      lo[l] = windows[s].start[index[l]];
      hi[l] = windows[s].end[index[l]];
    }
    const bool sums = op == pool_op::avg || op == pool_op::sum;
    double acc = sums                 ? 0.0
                 : op == pool_op::min ? std::numeric_limits<double>::infinity()
                                      : -std::numeric_limits<double>::infinity();
    std::vector<double> columns(hi[rank - 1] - lo[rank - 1], 0.0);
    std::vector<double> in_memory_order;
    double n = 0;
    std::vector<std::uint64_t> at = lo;
    for (;;) {
      std::uint64_t flat = 0;
      for (std::size_t l = 0; l < rank; ++l) flat = flat * shape[l] + at[l];
      double v = values[flat];
      if (sums) {
        if (global_tail) {
          in_memory_order.push_back(v);
        } else if (planar) {
          columns[at[rank - 1] - lo[rank - 1]] += v;
        } else {
          acc += v;
        }
      } else if ((op == pool_op::min ? v < acc : v > acc) || std::isnan(v)) {
        acc = v;
      }
      ++n;
      std::size_t l = rank;
      while (l-- > 0) {
        if (++at[l] < hi[l]) break;
        at[l] = lo[l];
      }
      if (l == static_cast<std::size_t>(-1)) break;
    }
    if (sums && planar) {
      const auto& dealt = global_tail ? in_memory_order : columns;
      std::vector<double> lanes(16, 0.0);
      for (std::size_t k = 0; k < dealt.size(); ++k) lanes[k % 16] += dealt[k];
      for (std::size_t width = 8; width >= 1; width /= 2) {
        for (std::size_t i = 0; i < width; ++i) lanes[i] += lanes[i + width];
      }
      acc = lanes[0];
    }
    out[cell] = op == pool_op::avg ? acc / n : acc;
  }
  return out;
}

std::vector<double> run_pooler(const tensor_info& info, const std::vector<double>& stored,
                               const pool_request& request, std::size_t block_elements) {
  pooler p(info, request);
  for (std::size_t i = 0; i < stored.size(); i += block_elements) {
    std::size_t n = std::min(block_elements, stored.size() - i);
    p.consume(std::as_bytes(std::span(stored.data() + i, n)));
  }
  auto out = p.finish();
  std::vector<double> values(out.data.size() / sizeof(double));
  std::memcpy(values.data(), out.data.data(), out.data.size());
  return values;
}

// The same values stored in Fortran order.
std::vector<double> to_fortran(const std::vector<double>& c_order,
                               const std::vector<std::uint64_t>& shape) {
  std::vector<double> out(c_order.size());
  std::size_t rank = shape.size();
  for (std::uint64_t flat = 0; flat < c_order.size(); ++flat) {
    std::uint64_t rest = flat, f = 0, stride = 1;
    std::vector<std::uint64_t> index(rank);
    for (std::size_t l = rank; l-- > 0;) {
      index[l] = rest % shape[l];
      rest /= shape[l];
    }
    for (std::size_t l = 0; l < rank; ++l) {
      f += index[l] * stride;
      stride *= shape[l];
    }
    out[f] = c_order[flat];
  }
  return out;
}

// `count` lengths from 1 to `longest`.
std::vector<std::uint64_t> random_lengths(std::mt19937_64& rng, std::size_t count,
                                          std::uint64_t longest) {
  std::vector<std::uint64_t> lengths;
  for (std::size_t i = 0; i < count; ++i) lengths.push_back(1 + rng() % longest);
  return lengths;
}

// Standard normal values for a tensor of `shape`.
std::vector<double> normal_values(std::mt19937_64& rng, const std::vector<std::uint64_t>& shape) {
  std::uint64_t count = 1;
  for (auto extent : shape) count *= extent;
  std::vector<double> values(count);
  std::normal_distribution<double> normal;
  for (auto& v : values) v = normal(rng);
  return values;
}

TEST_CASE("pool: agrees with the definition for random layouts, sizes, blocks and threads") {
  std::mt19937_64 rng(20261125);
  const char* layouts[] = {"NCHW", "NHWC", "NCL",   "NLC",   "CHW",  "HWC",
                           "HW",   "L",    "NCDHW", "NDHWC", "CNHW", "HNWC"};
  for (int trial = 0; trial < 300; ++trial) {
    layout axes = parse_layout(layouts[static_cast<std::size_t>(trial) % std::size(layouts)]);
    std::vector<std::uint64_t> shape;
    // Every fourth trial has long spatial axes, so windows are also wider
    // than the kernels' 16 lanes.
    bool wide = trial % 4 == 3;
    for (std::size_t l = 0; l < axes.rank(); ++l) {
      bool spatial = std::find(axes.spatial_axes.begin(), axes.spatial_axes.end(), l) !=
                     axes.spatial_axes.end();
      std::uint64_t longest = wide && spatial ? (axes.spatial_axes.size() > 2 ? 24 : 70) : 6;
      shape.push_back(1 + rng() % longest);
    }
    std::vector<std::uint64_t> out_spatial;
    for (std::size_t s = 0; s < axes.spatial_axes.size(); ++s) out_spatial.push_back(1 + rng() % 8);
    auto values = normal_values(rng, shape);
    std::uint64_t count = values.size();
    if (trial % 5 == 0) values[rng() % count] = std::nan("");
    for (pool_op op : {pool_op::avg, pool_op::max, pool_op::sum, pool_op::min}) {
      CAPTURE(trial);
      CAPTURE(axes.letters);
      auto expected = reference_pool(values, shape, axes, out_spatial, op);
      tensor_info info;
      info.shape = shape;
      info.type = dtype::float64;
      pool_request request{op, axes, out_spatial, dtype::float64, 1 + trial % 3, {}};
      std::size_t block = 1 + rng() % count;
      auto got = run_pooler(info, values, request, block);
      REQUIRE(got.size() == expected.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        if (std::isnan(expected[i])) {
          CHECK(std::isnan(got[i]));
        } else {
          CHECK(got[i] == expected[i]);  // same fold order: bit for bit
        }
      }
      info.order = memory_order::fortran;
      auto fortran = run_pooler(info, to_fortran(values, shape), request, block);
      for (std::size_t i = 0; i < got.size(); ++i) {
        if (std::isnan(expected[i])) {
          CHECK(std::isnan(fortran[i]));
        } else {
          CHECK(fortran[i] == doctest::Approx(expected[i]).epsilon(1e-13));
        }
      }
    }
  }
}

namespace {

// avgmax and catavgmax of `shape` pooled to `out_spatial`, against avg and
// max of the reference.
void check_avg_max_ops(std::mt19937_64& rng, const layout& axes,
                       const std::vector<std::uint64_t>& shape,
                       const std::vector<std::uint64_t>& out_spatial) {
  auto values = normal_values(rng, shape);
  std::uint64_t count = values.size();
  values[rng() % count] = std::nan("");
  auto avg = reference_pool(values, shape, axes, out_spatial, pool_op::avg);
  auto max = reference_pool(values, shape, axes, out_spatial, pool_op::max);
  tensor_info info;
  info.shape = shape;
  info.type = dtype::float64;

  pool_request request{pool_op::avgmax, axes, out_spatial, dtype::float64, 2, {}};
  auto avgmax = run_pooler(info, values, request, 1 + rng() % count);
  REQUIRE(avgmax.size() == avg.size());
  for (std::size_t i = 0; i < avg.size(); ++i) {
    double expected = 0.5 * (avg[i] + max[i]);
    CHECK((std::isnan(expected) ? std::isnan(avgmax[i]) : avgmax[i] == expected));
  }

  // Every run of C averages (the axes before C give the runs) is followed by its C maxima.
  request.op = pool_op::catavgmax;
  auto both = run_pooler(info, values, request, 1 + rng() % count);
  REQUIRE(both.size() == 2 * avg.size());
  auto out_shape = pooled_shape(shape, request);
  std::size_t c = *axes.channel_axis;
  std::uint64_t run = 1;
  for (std::size_t l = c; l < shape.size(); ++l) run *= l == c ? shape[l] : out_shape[l];
  CHECK(out_shape[c] == 2 * shape[c]);
  for (std::size_t i = 0; i < both.size(); ++i) {
    std::uint64_t r = i / (2 * run), k = i % (2 * run);
    double expected = k < run ? avg[r * run + k] : max[r * run + k - run];
    CHECK((std::isnan(expected) ? std::isnan(both[i]) : both[i] == expected));
  }
}

}  // namespace

TEST_CASE("pool: avgmax and catavgmax combine avg and max of the same windows") {
  std::mt19937_64 rng(20261205);
  for (const char* letters : {"NCHW", "NHWC", "CNHW", "NCL", "NDHWC", "CHW"}) {
    CAPTURE(letters);
    layout axes = parse_layout(letters);
    check_avg_max_ops(rng, axes, random_lengths(rng, axes.rank(), 7),
                      random_lengths(rng, axes.spatial_axes.size(), 4));
  }
  // More cells than are combined at a time, 35 a plane, so the chunks cut
  // planes and runs anywhere.
  check_avg_max_ops(rng, parse_layout("NCHW"), {3, 700, 9, 11}, {7, 5});
}

TEST_CASE("pool: gem is the root of the average of clamped powers") {
  std::mt19937_64 rng(20261205);
  for (const char* letters : {"NCHW", "NHWC", "NCL", "NCDHW"}) {
    layout axes = parse_layout(letters);
    auto shape = random_lengths(rng, axes.rank(), 9);
    auto out_spatial = random_lengths(rng, axes.spatial_axes.size(), 4);
    auto values = normal_values(rng, shape);
    values[rng() % values.size()] = std::nan("");
    tensor_info info;
    info.shape = shape;
    info.type = dtype::float64;
    for (gem_params gem : {gem_params{}, gem_params{2.5, 0.1}}) {
      CAPTURE(letters);
      CAPTURE(gem.p);
      std::vector<double> powers;
      for (double x : values) powers.push_back(std::pow(x < gem.eps ? gem.eps : x, gem.p));
      auto averages = reference_pool(powers, shape, axes, out_spatial, pool_op::avg);
      pool_request request{pool_op::gem, axes, out_spatial, dtype::float64, 2, gem};
      auto got = run_pooler(info, values, request, 1 + rng() % values.size());
      REQUIRE(got.size() == averages.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        double expected = std::pow(averages[i], 1 / gem.p);
        if (std::isnan(expected)) {
          CHECK(std::isnan(got[i]));
        } else {
          // x * x * x for p = 3 may round differently from pow(x, 3).
          CHECK(got[i] == doctest::Approx(expected).epsilon(1e-14));
        }
      }
    }
  }
}

TEST_CASE("pool: streams opened on several threads at once give the one-stream result") {
  // Each stream is opened on its own thread, as the executor's workers open
  // them: every cell must get its start value before any stream writes one.
  layout axes = parse_layout("NHWC");
  std::vector<std::uint64_t> shape{8, 64, 64, 32};
  std::mt19937_64 rng(3);
  auto values = normal_values(rng, shape);
  for (auto& v : values) v -= 10;  // all below 0, so a lost maximum shows
  tensor_info info;
  info.shape = shape;
  info.type = dtype::float64;
  pool_request request{pool_op::max, axes, {64, 8}, dtype::float64, 1, {}};
  auto expected = run_pooler(info, values, request, values.size());
  for (int attempt = 0; attempt < 20; ++attempt) {
    pooler p(info, request);
    auto ranges = p.independent_ranges(values.size(), 8);
    std::vector<std::thread> workers;
    for (std::size_t part = 0; part + 1 < ranges.size(); ++part) {
      workers.emplace_back([&, part] {
        auto stream = p.open_stream(ranges[part]);
        stream->consume(std::as_bytes(
            std::span(values.data() + ranges[part], ranges[part + 1] - ranges[part])));
      });
    }
    for (auto& worker : workers) worker.join();
    auto out = p.finish();
    std::vector<double> got(out.data.size() / sizeof(double));
    std::memcpy(got.data(), out.data.data(), out.data.size());
    REQUIRE(got == expected);
  }
}

TEST_CASE("pool: results are bit-identical for any thread count and block size") {
  layout axes = parse_layout("NCHW");
  std::vector<std::uint64_t> shape{3, 64, 23, 29};
  std::uint64_t count = 3 * 64 * 23 * 29;
  std::vector<float> values(count);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1e4f, 1e4f);
  for (auto& v : values) v = uniform(rng);
  tensor_info info;
  info.shape = shape;
  info.type = dtype::float32;
  for (const char* letters : {"NCHW", "NHWC"}) {
    axes = parse_layout(letters);
    featpool::byte_buffer first;
    for (int threads : {1, 2, 4}) {
      for (std::size_t block : {count, std::size_t{65536 + 13}, std::size_t{100003}}) {
        pool_request request{pool_op::avg, axes, {7, 5}, dtype::float32, threads, {}};
        pooler p(info, request);
        for (std::size_t i = 0; i < count; i += block) {
          p.consume(std::as_bytes(std::span(values.data() + i, std::min(block, count - i))));
        }
        auto out = p.finish();
        if (first.empty()) first = out.data;
        CHECK(out.data == first);
      }
    }
  }
}

TEST_CASE("pool: integers keep their dtype under max and average exactly in double") {
  tensor_info info;
  info.shape = {1, 1, 3};
  info.type = dtype::int64;
  std::vector<std::int64_t> values{(std::int64_t{1} << 62) + 1, -5, (std::int64_t{1} << 62) + 3};
  auto axes = parse_layout("NCL");
  CHECK(pooled_dtype(pool_op::max, dtype::int64, std::nullopt, false) == dtype::int64);
  pooler max_pool(info, {pool_op::max, axes, {1}, dtype::int64, 1, {}});
  max_pool.consume(std::as_bytes(std::span(values)));
  auto out = max_pool.finish();
  std::int64_t result;
  std::memcpy(&result, out.data.data(), 8);
  CHECK(result == (std::int64_t{1} << 62) + 3);
  CHECK(pooled_dtype(pool_op::avg, dtype::uint8, std::nullopt, false) == dtype::float32);
  CHECK(pooled_dtype(pool_op::avg, dtype::float64, std::nullopt, false) == dtype::float64);
  CHECK(pooled_dtype(pool_op::max, dtype::float16, std::nullopt, false) == dtype::float32);
  CHECK(pooled_dtype(pool_op::max, dtype::bool_, std::nullopt, false) == dtype::bool_);
  CHECK(pooled_dtype(pool_op::max, dtype::int8, dtype::float16, false) == dtype::float16);
}

TEST_CASE("pool: half outputs round to nearest even, as numpy's astype does") {
  CHECK(to_float16(1.0).bits == 0x3c00);
  CHECK(to_float16(65504.0).bits == 0x7bff);
  CHECK(to_float16(65520.0).bits == 0x7c00);  // halfway to the next step rounds up to Inf
  CHECK(to_float16(65519.99).bits == 0x7bff);
  CHECK(to_float16(1.0 + std::ldexp(1.0, -11)).bits == 0x3c00);      // tie, even stays
  CHECK(to_float16(1.0 + 3 * std::ldexp(1.0, -11)).bits == 0x3c02);  // tie, odd rounds up
  CHECK(to_float16(std::ldexp(1.0, -24)).bits == 0x0001);
  CHECK(to_float16(std::ldexp(1.0, -25)).bits == 0x0000);  // tie with zero
  CHECK(to_float16(std::ldexp(1.5, -25)).bits == 0x0001);
  CHECK(to_float16(-0.0).bits == 0x8000);
  CHECK(to_float16(std::nan("")).bits == 0x7e00);
  for (std::uint32_t bits = 0; bits < 0x7c00; ++bits) {
    auto h = float16_bits{static_cast<std::uint16_t>(bits)};
    REQUIRE(to_float16(to_double(h)).bits == bits);
  }
}

TEST_CASE("layout: parsing and defaults") {
  auto nhwc = parse_layout("nhwc");
  CHECK(nhwc.letters == "NHWC");
  CHECK(nhwc.batch_axis == 0u);
  CHECK(nhwc.channel_axis == 3u);
  CHECK(nhwc.spatial_axes == std::vector<std::size_t>{1, 2});
  CHECK(default_layout(3)->letters == "NCL");
  CHECK(default_layout(4)->letters == "NCHW");
  CHECK(default_layout(5)->letters == "NCDHW");
  CHECK_FALSE(default_layout(2).has_value());
  CHECK_THROWS_WITH_AS(parse_layout("NCHH"), "--layout: 'NCHH': the letter H is repeated",
                       usage_error);
  CHECK_THROWS_WITH_AS(
      parse_layout("NC"),
      "--layout: 'NC': a layout needs a spatial axis (a letter other than N and C)", usage_error);
  CHECK_THROWS_WITH_AS(parse_layout("N-HW"), "--layout: 'N-HW': a layout is letters only",
                       usage_error);
  CHECK_THROWS_WITH_AS(parse_layout(""), "--layout: '': a layout needs at least one axis letter",
                       usage_error);
}

TEST_CASE("pool: a pyramid puts every level's flattened cells side by side, sample by sample") {
  // (N=2, C=1, H=2, W=2) at sizes 1 and 2: each sample's mean, then its
  // four values.
  tensor_info info;
  info.shape = {2, 1, 2, 2};
  info.type = dtype::float64;
  std::vector<double> values{1, 2, 3, 6, 10, 20, 30, 40};
  pool_request request{pool_op::avg, parse_layout("NCHW"), {1, 1}, dtype::float64, 1, {}};
  request.pyramid = {{1, 1}, {2, 2}};
  CHECK(pooled_shape(info.shape, request) == std::vector<std::uint64_t>{2, 5});
  CHECK(run_pooler(info, values, request, 3) ==
        std::vector<double>{3, 1, 2, 3, 6, 25, 10, 20, 30, 40});
  // N inside the layout (C=2, N=1... as CNL): each level is gathered per
  // sample as --flatten gathers it, C before L.
  info.shape = {2, 2, 2};
  request = {pool_op::max, parse_layout("CNL"), {1}, dtype::float64, 1, {}};
  request.pyramid = {{1}, {2}};
  // x[c][n][l]: c0: n0 (1, 5), n1 (2, 0); c1: n0 (7, 3), n1 (4, 8).
  values = {1, 5, 2, 0, 7, 3, 4, 8};
  CHECK(run_pooler(info, values, request, 8) ==
        std::vector<double>{5, 7, 1, 5, 7, 3, 2, 8, 2, 0, 4, 8});
}

TEST_CASE("pool: --normalize l2 divides each vector by its norm, as F.normalize does") {
  tensor_info info;
  info.shape = {2, 2, 1};
  info.type = dtype::float64;
  // Sample 0 pools to (3, 4), sample 1 to (0, 0): its norm is floored at
  // 1e-12, so it stays zero.
  std::vector<double> values{3, 4, 0, 0};
  pool_request request{pool_op::avg, parse_layout("NCL"), {1}, dtype::float64, 1, {}};
  request.normalize = normalization::channels;
  CHECK(run_pooler(info, values, request, 4) == std::vector<double>{0.6, 0.8, 0, 0});
  // Over each sample's whole output: (N=1, C=2, L=2) holding 1, 1, 1, 1.
  info.shape = {1, 2, 2};
  values = {1, 1, 1, 1};
  request = {pool_op::max, parse_layout("NCL"), {2}, dtype::float64, 1, {}};
  request.normalize = normalization::samples;
  CHECK(run_pooler(info, values, request, 1) == std::vector<double>{0.5, 0.5, 0.5, 0.5});
  // Along C when C is not the slowest axis (NLC): each position's channels.
  info.shape = {1, 2, 2};
  values = {0, 2, 5, 0};
  request = {pool_op::sum, parse_layout("NLC"), {2}, dtype::float64, 1, {}};
  request.normalize = normalization::channels;
  CHECK(run_pooler(info, values, request, 2) == std::vector<double>{0, 1, 1, 0});
  // A maximum of integers, normalized, is a float.
  CHECK(pooled_dtype(pool_op::max, dtype::int16, std::nullopt, true) == dtype::float32);
}

TEST_CASE("pool: lse is log(mean(exp(r x))) / r, shifted so that nothing overflows") {
  const double inf = std::numeric_limits<double>::infinity();
  tensor_info info;
  info.shape = {6, 1, 2};
  info.type = dtype::float64;
  // One window of two per sample.
  std::vector<double> values{0,    std::log(3.0), 1000,         1000, inf,   1,
                             -inf, -inf,          std::nan(""), 1,    -1000, 0};
  pool_request request{pool_op::lse, parse_layout("NCL"), {1}, dtype::float64, 1, {}};
  auto got = run_pooler(info, values, request, 5);
  REQUIRE(got.size() == 6);
  CHECK(got[0] == doctest::Approx(std::log(2.0)).epsilon(1e-15));  // log((1 + 3) / 2)
  CHECK(got[1] == 1000);  // exp(1000) overflows; shifted, it does not
  CHECK(got[2] == inf);
  CHECK(got[3] == -inf);
  CHECK(std::isnan(got[4]));
  CHECK(got[5] == doctest::Approx(-std::log(2.0)).epsilon(1e-15));  // exp(-1000) is 0 next to 1
  // r scales inside and out: r = 2 on (0, log 3) is log((1 + 9) / 2) / 2.
  request.lse_r = 2;
  CHECK(run_pooler(info, values, request, 12)[0] ==
        doctest::Approx(std::log(5.0) / 2).epsilon(1e-15));
}

// The argmax of `stored` (elements of T in `info`'s storage order) fed in
// blocks of `block_elements`.
template <class T>
std::vector<std::int64_t> run_indices(const tensor_info& info, const std::vector<T>& stored,
                                      const pool_request& request, std::size_t block_elements) {
  pooler p(info, request);
  for (std::size_t i = 0; i < stored.size(); i += block_elements) {
    std::size_t n = std::min(block_elements, stored.size() - i);
    p.consume(std::as_bytes(std::span(stored.data() + i, n)));
  }
  p.finish();
  auto out = p.indices();
  CHECK(out.type == dtype::int64);
  CHECK(out.shape == pooled_shape(info.shape, request));
  std::vector<std::int64_t> offsets(out.data.size() / sizeof(std::int64_t));
  std::memcpy(offsets.data(), out.data.data(), out.data.size());
  return offsets;
}

TEST_CASE("pool: --indices are PyTorch's return_indices, whatever the storage order") {
  const double nan = std::nan("");
  const double inf = std::numeric_limits<double>::infinity();
  // (N=1, C=3, H=2, W=3) pooled to 1x2: windows of columns [0, 2) and
  // [1, 3), offsets h·3 + w. Channel 0 ties (5 at 0, 2 and 3), channel 1
  // holds NaN at 0, 3 and ties 9 at 2 and 5, channel 2 is all -inf.
  tensor_info info;
  info.shape = {1, 3, 2, 3};
  info.type = dtype::float64;
  std::vector<double> nchw{5,    1,    5,    5,    2,    0,  //
                           nan,  3,    9,    nan,  1,    9,  //
                           -inf, -inf, -inf, -inf, -inf, -inf};
  pool_request request{pool_op::max, parse_layout("NCHW"), {1, 2}, dtype::float64, 1, {}};
  request.indices = true;
  // torch: the first of equal maxima, the last NaN, -inf alone at the
  // window's first element.
  const std::vector<std::int64_t> expected{0, 2, 3, 2, 0, 1};
  for (std::size_t block : {1u, 5u, 18u})
    CHECK(run_indices(info, nchw, request, block) == expected);
  // Fortran order stores W slowest and C faster than H: the ties and NaN
  // arrive in another order.
  info.order = memory_order::fortran;
  CHECK(run_indices(info, to_fortran(nchw, info.shape), request, 4) == expected);
  // Channels last, (N=1, H=2, W=3, C=3): the same offsets, in NHWC order.
  info.order = memory_order::c;
  info.shape = {1, 2, 3, 3};
  std::vector<double> nhwc(nchw.size());
  for (std::size_t c = 0; c < 3; ++c) {
    for (std::size_t hw = 0; hw < 6; ++hw) nhwc[hw * 3 + c] = nchw[c * 6 + hw];
  }
  request.axes = parse_layout("NHWC");
  request.output_spatial = {1, 2};
  CHECK(run_indices(info, nhwc, request, 7) == std::vector<std::int64_t>{0, 3, 0, 2, 2, 1});
  // Integers compare exactly: 2^60 + 1 beats 2^60, which double could not tell apart.
  info.shape = {1, 1, 3};
  info.type = dtype::int64;
  std::vector<std::int64_t> large{std::int64_t{1} << 60, (std::int64_t{1} << 60) + 1,
                                  std::int64_t{1} << 60};
  request = {pool_op::max, parse_layout("NCL"), {1}, dtype::int64, 1, {}};
  request.indices = true;
  CHECK(run_indices(info, large, request, 3) == std::vector<std::int64_t>{1});
}

TEST_CASE("size: a pyramid's levels, each any form --size takes") {
  auto levels = parse_size_levels("1,2x3,_x4");
  REQUIRE(levels.size() == 3);
  CHECK(levels[1].sizes == std::vector<std::optional<std::uint64_t>>{2, 3});
  CHECK(size_levels_text(levels) == "1,2x3,_x4");
  CHECK(parse_size_levels("7").size() == 1);
  CHECK_THROWS_WITH_AS(parse_size_levels("1,,2"),
                       "--size: '1,,2': expected sizes like 7, 7x7 or 1,2,4 (a pyramid), with "
                       "no empty level",
                       usage_error);
  CHECK_THROWS_AS(parse_size_levels("1,0"), usage_error);
}

TEST_CASE("size: parsing, _ and resolution against spatial lengths") {
  auto s = parse_size("_x7");
  CHECK(s.sizes.size() == 2);
  CHECK_FALSE(s.sizes[0].has_value());
  CHECK(s.sizes[1] == 7u);
  std::string reason;
  CHECK(resolve_size(s, {5, 9}, reason) == std::vector<std::uint64_t>{5, 7});
  CHECK(resolve_size(parse_size("3"), {5, 9, 2}, reason) == std::vector<std::uint64_t>{3, 3, 3});
  CHECK_FALSE(resolve_size(parse_size("3x3"), {5}, reason).has_value());
  CHECK(reason == "--size 3x3 gives 2 sizes for 1 spatial axes");
  CHECK_THROWS_WITH_AS(parse_size("0x7"), "--size: '0x7': sizes must be at least 1", usage_error);
  CHECK_THROWS_WITH_AS(parse_size("7x"),
                       "--size: '7x': expected sizes like 7, 7x7 or 3x5, with _ to keep an axis",
                       usage_error);
  CHECK_THROWS_WITH_AS(parse_size("-1"),
                       "--size: '-1': expected sizes like 7, 7x7 or 3x5, with _ to keep an axis",
                       usage_error);
  CHECK_THROWS_WITH_AS(parse_size("99999999999999999999"),
                       "--size: '99999999999999999999': a size is too large", usage_error);
}

}  // namespace
}  // namespace featpool
