#pragma once
// Summary statistics of a tensor for `inspect --stats`, computed in one
// streaming pass over its blocks, in float64, in bounded memory.

#include <cstdint>
#include <optional>

#include "featpool/source.hpp"

namespace featpool {

struct tensor_stats {
  // Of the finite values only; empty when there are none.
  std::optional<double> min;
  std::optional<double> max;
  std::optional<double> mean;
  std::optional<double> std;  // population standard deviation (numpy's ddof=0)
  std::uint64_t nan_count = 0;
  std::uint64_t inf_count = 0;  // +Inf and -Inf together
};

// Reads every block of `reader`, whose elements are of `type`.
tensor_stats compute_stats(block_reader& reader, dtype type);

}  // namespace featpool
