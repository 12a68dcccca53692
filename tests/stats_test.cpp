#include "featpool/stats.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "test_files.hpp"
#include <doctest/doctest.h>

namespace featpool {
namespace {

using testing::vector_reader;

TEST_CASE("stats: finite values only, NaN and both infinities counted") {
  const double inf = std::numeric_limits<double>::infinity();
  vector_reader<double> reader({1, 2, std::nan(""), 3, inf, -inf, 4}, 3);
  auto s = compute_stats(reader, dtype::float64);
  CHECK(s.min == 1.0);
  CHECK(s.max == 4.0);
  CHECK(s.mean == doctest::Approx(2.5).epsilon(1e-15));
  CHECK(*s.std == doctest::Approx(std::sqrt(1.25)).epsilon(1e-15));
  CHECK(s.nan_count == 1);
  CHECK(s.inf_count == 2);
}

TEST_CASE("stats: no finite values leaves the moments empty") {
  vector_reader<float> reader({NAN, INFINITY}, 8);
  auto s = compute_stats(reader, dtype::float32);
  CHECK_FALSE(s.min.has_value());
  CHECK_FALSE(s.std.has_value());
  CHECK(s.nan_count == 1);
  CHECK(s.inf_count == 1);
  vector_reader<float> empty({}, 8);
  CHECK_FALSE(compute_stats(empty, dtype::float32).mean.has_value());
}

TEST_CASE("stats: blocks merge to the same result as one pass, for any block size") {
  std::vector<float> values;
  for (int i = 0; i < 10007; ++i) values.push_back(static_cast<float>(std::sin(i) * 1000 + 5));
  vector_reader<float> whole(values, values.size());
  auto reference = compute_stats(whole, dtype::float32);
  for (std::size_t per_block : {1u, 7u, 64u, 1000u}) {
    CAPTURE(per_block);
    vector_reader<float> reader(values, per_block);
    auto s = compute_stats(reader, dtype::float32);
    CHECK(s.min == reference.min);
    CHECK(s.max == reference.max);
    CHECK(*s.mean == doctest::Approx(*reference.mean).epsilon(1e-12));
    CHECK(*s.std == doctest::Approx(*reference.std).epsilon(1e-12));
  }
}

TEST_CASE("stats: a large offset does not swamp a small spread") {
  // The naive sum-of-squares formula loses every digit here; two-pass
  // per block with an exact merge does not.
  std::vector<double> values;
  for (int i = 0; i < 4000; ++i) values.push_back(1e9 + (i % 2 ? 1.0 : -1.0));
  vector_reader<double> reader(values, 333);
  auto s = compute_stats(reader, dtype::float64);
  CHECK(*s.mean == doctest::Approx(1e9).epsilon(1e-15));
  CHECK(*s.std == doctest::Approx(1.0).epsilon(1e-9));
}

TEST_CASE("stats: integers, bools and halves are summarized as numbers") {
  vector_reader<std::int8_t> ints({-128, 127, 0}, 2);
  auto s = compute_stats(ints, dtype::int8);
  CHECK(s.min == -128.0);
  CHECK(s.max == 127.0);
  vector_reader<std::uint8_t> bools({0, 1, 1, 1}, 4);
  CHECK(compute_stats(bools, dtype::bool_).mean == 0.75);
  vector_reader<std::uint16_t> halves({0x3c00, 0x4000, 0x7e00}, 2);  // 1, 2, NaN
  auto h = compute_stats(halves, dtype::float16);
  CHECK(h.mean == 1.5);
  CHECK(h.nan_count == 1);
}

}  // namespace
}  // namespace featpool
