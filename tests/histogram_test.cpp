#include "featpool/histogram.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "test_files.hpp"
#include <doctest/doctest.h>

namespace featpool {
namespace {

using testing::vector_reader;

// The counts of `values` as float64 between their own min and max.
std::optional<histogram_counts> histogram_of(std::vector<double> values, double min, double max) {
  vector_reader<double> reader(std::move(values), 3);
  return compute_histogram(reader, dtype::float64, min, max);
}

TEST_CASE("histogram: values on interior edges open their bin, the max closes the last") {
  // Edges 0, 1, ..., 16: every integer but 16 starts its own bin.
  std::vector<double> values;
  for (int i = 0; i <= 16; ++i) values.push_back(i);
  auto counts = histogram_of(values, 0, 16);
  REQUIRE(counts);
  CHECK(*counts == histogram_counts{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2});
}

TEST_CASE("histogram: the edges, not the scaled index, decide a value an ulp from an edge") {
  // Between 0.1 and 0.7 the edge 2 * 0.0375 + 0.1 is 0.175 exactly, but
  // (0.175 - 0.1) * (16 / 0.6) = 1.9999999999999996: numpy truncates to 1,
  // then steps up because 0.175 >= edge 2.
  auto up = histogram_of({0.1, 0.175, 0.7}, 0.1, 0.7);
  REQUIRE(up);
  CHECK(*up == histogram_counts{1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  // Between 0.3 and 1.1, (0.6 - 0.3) * norm is 6 but edge 6 is
  // 0.6000000000000001 > 0.6, so numpy steps down to bin 5; 0.7 scales to
  // 7.999999999999999 and lies on edge 8 exactly, so it steps up to bin 8.
  auto both = histogram_of({0.3, 0.6, 0.7, 1.1}, 0.3, 1.1);
  REQUIRE(both);
  CHECK(*both == histogram_counts{1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1});
}

TEST_CASE("histogram: min == max widens the range by 0.5 each way, as numpy does") {
  // [4.5, 5.5]: 5 is (5 - 4.5) * 16 = 8, bin 8.
  auto counts = histogram_of({5, 5, 5}, 5, 5);
  REQUIRE(counts);
  CHECK(*counts == histogram_counts{0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("histogram: NaN and infinities are not counted") {
  const double inf = std::numeric_limits<double>::infinity();
  auto counts = histogram_of({std::nan(""), 0, inf, -inf, 16}, 0, 16);
  REQUIRE(counts);
  CHECK(*counts == histogram_counts{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
}

TEST_CASE("histogram: none where numpy.histogram fails") {
  // 1e17 ± 0.5 is 1e17 again: a zero range, which numpy turns into an IndexError.
  CHECK_FALSE(histogram_of({1e17}, 1e17, 1e17));
  // max - min overflows float64.
  CHECK_FALSE(histogram_of({-1e308, 1e308}, -1e308, 1e308));
  // 16 / (max - min) overflows float64.
  const double tiny = std::numeric_limits<double>::denorm_min();
  CHECK_FALSE(histogram_of({tiny, 2 * tiny}, tiny, 2 * tiny));
}

TEST_CASE("histogram: a tensor of several 4 MiB blocks, in integers") {
  // 0, 1, ..., 16 repeated 2^18 times: 17 MiB of int32 in blocks of 4 MiB.
  constexpr std::size_t kRepeats = 1u << 18;
  std::vector<std::int32_t> values(17 * kRepeats);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<std::int32_t>(i % 17);
  vector_reader<std::int32_t> reader(std::move(values), (4u << 20) / sizeof(std::int32_t));
  auto counts = compute_histogram(reader, dtype::int32, 0, 16);
  REQUIRE(counts);
  histogram_counts expected;
  expected.fill(kRepeats);
  expected[15] = 2 * kRepeats;
  CHECK(*counts == expected);
}

TEST_CASE("histogram: halves and unsigned bytes are counted as their values") {
  // 1, 1.5, 2, NaN as float16 bits.
  vector_reader<std::uint16_t> halves({0x3c00, 0x3e00, 0x4000, 0x7e00}, 2);
  auto h = compute_histogram(halves, dtype::float16, 1, 2);
  REQUIRE(h);
  CHECK(*h == histogram_counts{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1});
  vector_reader<std::uint8_t> bytes({0, 255, 16, 17}, 4);  // edges every 255/16 = 15.9375
  auto b = compute_histogram(bytes, dtype::uint8, 0, 255);
  REQUIRE(b);
  CHECK(*b == histogram_counts{1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
}

TEST_CASE("histogram bars: spaces for empty bins, eighths rounded up, full at the largest") {
  CHECK(histogram_bars({0, 1, 8, 4, 5, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}) == " ▁█▄▅▇         ▂");
  // Against 100: 1 and 12 are under one eighth, still shown; 13 is just
  // over, 50 is four eighths exactly and 51 just over.
  CHECK(histogram_bars({100, 1, 12, 13, 50, 51, 0, 0, 0, 0, 0, 0, 0, 0, 0, 99}) ==
        "█▁▁▂▄▅         █");
  histogram_counts empty{};
  CHECK(histogram_bars(empty) == std::string(16, ' '));
  // 8 * count would wrap around 64 bits.
  histogram_counts huge{};
  huge[0] = std::uint64_t{1} << 62;
  huge[1] = 1;
  CHECK(histogram_bars(huge) == "█▁              ");
}

}  // namespace
}  // namespace featpool
