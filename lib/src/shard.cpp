#include "featpool/shard.hpp"

#include <algorithm>
#include <charconv>
#include <numeric>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "featpool/error.hpp"

namespace featpool {
namespace {

bool parse_count(std::string_view text, std::uint32_t& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

}  // namespace

shard_spec parse_shard(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return usage_error(fmt::format("--shard: '{}': {}", text, why));
  };
  auto slash = text.find('/');
  if (slash == std::string_view::npos) throw bad("expected K/N, e.g. 3/8");
  shard_spec shard;
  if (!parse_count(text.substr(0, slash), shard.index) ||
      !parse_count(text.substr(slash + 1), shard.count)) {
    throw bad("expected K/N with whole numbers, e.g. 3/8");
  }
  if (shard.count == 0) throw bad("N must be at least 1");
  if (shard.index < 1 || shard.index > shard.count) throw bad("K must be between 1 and N");
  return shard;
}

std::vector<std::uint32_t> assign_shards(const std::vector<std::uint64_t>& weights,
                                         std::uint32_t count) {
  if (count == 0) throw std::invalid_argument("assign_shards: no shards");
  std::vector<std::size_t> heaviest_first(weights.size());
  std::iota(heaviest_first.begin(), heaviest_first.end(), 0);
  std::stable_sort(heaviest_first.begin(), heaviest_first.end(),
                   [&](std::size_t a, std::size_t b) { return weights[a] > weights[b]; });
  std::vector<std::uint64_t> load(count, 0);
  std::vector<std::uint32_t> shard_of(weights.size(), 1);
  for (auto group : heaviest_first) {
    auto lightest =
        static_cast<std::uint32_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[lightest] += weights[group];
    shard_of[group] = lightest + 1;
  }
  return shard_of;
}

}  // namespace featpool
