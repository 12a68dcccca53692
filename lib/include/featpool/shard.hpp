#pragma once
// --shard K/N: N independent processes (GNU parallel, a Slurm job array)
// each take a deterministic share of the discovered input files, balanced
// by bytes, so together they cover a batch exactly once.

#include <cstdint>
#include <string_view>
#include <vector>

namespace featpool {

struct shard_spec {
  std::uint32_t index = 1;  // K, 1-based
  std::uint32_t count = 1;  // N
};

// Parses "K/N" with 1 <= K <= N; throws usage_error otherwise.
shard_spec parse_shard(std::string_view text);

// The shard (1-based) of each of `weights.size()` groups, for `count` >= 1
// shards (std::invalid_argument otherwise): the heaviest group
// first, each to the shard holding the fewest bytes so far (the lowest
// number on a tie). Groups of equal weight keep their given order, so every
// process computes the same answer from the same listing.
std::vector<std::uint32_t> assign_shards(const std::vector<std::uint64_t>& weights,
                                         std::uint32_t count);

}  // namespace featpool
