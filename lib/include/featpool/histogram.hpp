#pragma once
// The 16-bin histogram of `inspect --hist`: the counts numpy.histogram(x,
// bins=16) gives for a tensor's finite values x (as float64), computed in a
// streaming pass once the stats pass has found their min and max, and drawn
// as one line of block characters.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "featpool/source.hpp"

namespace featpool {

inline constexpr std::size_t kHistogramBins = 16;

using histogram_counts = std::array<std::uint64_t, kHistogramBins>;

// Reads every block of `reader`, whose elements are of `type`, and counts
// its finite values into 16 equal bins between `min` and `max` (those of
// the finite values), with numpy's edges and its rounding of values that
// lie on them. Empty where numpy.histogram itself fails: when max - min
// overflows float64, or is so small (or min == max so large that ±0.5 is
// lost) that 16 / (max - min) is not finite.
std::optional<histogram_counts> compute_histogram(block_reader& reader, dtype type, double min,
                                                  double max);

// One character a bin: a space for an empty bin, else U+2581..U+2588 at
// level ceil(8 * count / largest count), so no non-empty bin looks empty.
std::string histogram_bars(const histogram_counts& counts);

}  // namespace featpool
