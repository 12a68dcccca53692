#include "featpool/histogram.hpp"

#include <algorithm>
#include <cmath>

#include "featpool/element.hpp"

namespace featpool {
namespace {

// GCC's 128-bit integer, which ISO C++ lacks (hence __extension__).
__extension__ typedef unsigned __int128 wide;

// numpy.histogram's equal-width bins (numpy/lib/histograms.py, the fast path
// taken for an integer `bins`): edges from numpy.linspace, a bin index from
// one multiplication, then at most one step down or up where that index
// disagrees with the edges by an ulp. Every operation is numpy's, in the same
// order and in float64, so values on an edge land where numpy puts them.
class equal_bins {
 public:
  static std::optional<equal_bins> between(double min, double max) {
    equal_bins bins;
    // numpy widens an empty range to avoid dividing by zero.
    if (min == max) {
      min -= 0.5;
      max += 0.5;
    }
    bins.first_ = min;
    bins.last_ = max;
    bins.norm_ = static_cast<double>(kHistogramBins) / (max - min);
    // numpy's index computation gives NaN here and it raises IndexError.
    if (!std::isfinite(bins.norm_) || bins.norm_ <= 0) return std::nullopt;
    // linspace(min, max, 17): i * step + min, the last edge max itself. (Its
    // other branch, for a step that underflows to 0, needs a range whose
    // norm is not finite, refused above.)
    double step = (max - min) / static_cast<double>(kHistogramBins);
    for (std::size_t i = 0; i < kHistogramBins; ++i) {
      bins.edges_[i] = static_cast<double>(i) * step + min;
    }
    bins.edges_[kHistogramBins] = max;
    return bins;
  }

  // numpy drops values outside [first, last]; here that only happens if the
  // tensor changed between the two passes.
  bool holds(double x) const { return x >= first_ && x <= last_; }

  std::size_t bin_of(double x) const {
    // x - first >= 0 and (x - first) * norm <= 16 plus an ulp or so, so the
    // truncation (numpy's astype(intp)) is in range.
    auto index = static_cast<std::size_t>((x - first_) * norm_);
    if (index >= kHistogramBins) index = kHistogramBins - 1;
    if (x < edges_[index]) {
      --index;
    } else if (x >= edges_[index + 1] && index != kHistogramBins - 1) {
      // numpy tests the increment on the index already decremented; after a
      // decrement x < edges[index + 1] holds, so an else is the same.
      ++index;
    }
    return index;
  }

 private:
  double first_ = 0;
  double last_ = 0;
  double norm_ = 0;
  std::array<double, kHistogramBins + 1> edges_{};
};

}  // namespace

std::optional<histogram_counts> compute_histogram(block_reader& reader, dtype type, double min,
                                                  double max) {
  auto bins = equal_bins::between(min, max);
  if (!bins) return std::nullopt;
  histogram_counts counts{};
  visit_dtype(type, [&]<class T>(std::type_identity<T>) {
    for (auto block = reader.next(); !block.empty(); block = reader.next()) {
      for (T element : elements_of<T>(block)) {
        double x = to_double(element);
        // NaN fails both comparisons, and ±Inf lies outside any finite range.
        if (bins->holds(x)) ++counts[bins->bin_of(x)];
      }
    }
  });
  return counts;
}

std::string histogram_bars(const histogram_counts& counts) {
  // U+2581 LOWER ONE EIGHTH BLOCK to U+2588 FULL BLOCK.
  static constexpr const char* kLevels[] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                            "\u2585", "\u2586", "\u2587", "\u2588"};
  std::uint64_t largest = *std::max_element(counts.begin(), counts.end());
  std::string bars;
  for (std::uint64_t count : counts) {
    if (count == 0) {
      bars += ' ';
      continue;
    }
    // ceil(8 * count / largest), in 128 bits so that 8 * count cannot wrap.
    auto level = static_cast<std::size_t>((wide{count} * 8 + largest - 1) / largest);
    bars += kLevels[level - 1];
  }
  return bars;
}

}  // namespace featpool
