#include "featpool/shard.hpp"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "featpool/error.hpp"

namespace featpool {
namespace {

// The bytes each shard (1-based, so index 0 is unused) ends up holding.
std::vector<std::uint64_t> loads(const std::vector<std::uint64_t>& weights,
                                 const std::vector<std::uint32_t>& shards, std::uint32_t count) {
  std::vector<std::uint64_t> load(count + 1, 0);
  for (std::size_t i = 0; i < weights.size(); ++i) load[shards[i]] += weights[i];
  return load;
}

TEST_CASE("shard: K/N with 1 <= K <= N parses") {
  struct expected {
    const char* text;
    std::uint32_t index;
    std::uint32_t count;
  };
  for (auto row : {expected{"1/1", 1, 1}, expected{"3/8", 3, 8}, expected{"8/8", 8, 8},
                   expected{"1000/1000", 1000, 1000}}) {
    CAPTURE(row.text);
    auto shard = parse_shard(row.text);
    CHECK(shard.index == row.index);
    CHECK(shard.count == row.count);
  }
}

TEST_CASE("shard: leading zeros are whole numbers too") {
  // from_chars reads "01" as 1: the contract is whole numbers, not a
  // canonical spelling.
  auto shard = parse_shard("01/04");
  CHECK(shard.index == 1);
  CHECK(shard.count == 4);
}

TEST_CASE("shard: K outside 1..N is a usage error") {
  CHECK_THROWS_AS(parse_shard("0/4"), usage_error);
  CHECK_THROWS_AS(parse_shard("5/4"), usage_error);
  CHECK_THROWS_AS(parse_shard("1/0"), usage_error);
  CHECK_THROWS_AS(parse_shard("0/0"), usage_error);
  CHECK_THROWS_WITH_AS(parse_shard("5/4"), "--shard: '5/4': K must be between 1 and N",
                       usage_error);
  CHECK_THROWS_WITH_AS(parse_shard("1/0"), "--shard: '1/0': N must be at least 1", usage_error);
}

TEST_CASE("shard: anything but two whole numbers around a slash is a usage error") {
  for (const char* text :
       {"",     "2",    "/",    "/4",    "1/",    "a/b",  "1/b",
        "a/4",  "-1/4", "1/-4", "+1/4",  "1/4x",  "1x/4", " 1/4",
        "1/4 ", "1 /4", "1/ 4", "1.0/4", "1/4/5", "1//4", "4294967296/4294967296"}) {
    CAPTURE(text);
    CHECK_THROWS_AS(parse_shard(text), usage_error);
  }
  CHECK_THROWS_WITH_AS(parse_shard("2"), "--shard: '2': expected K/N, e.g. 3/8", usage_error);
  CHECK_THROWS_WITH_AS(parse_shard("a/b"),
                       "--shard: 'a/b': expected K/N with whole numbers, e.g. 3/8", usage_error);
}

TEST_CASE("shard: every group gets exactly one shard between 1 and N") {
  std::mt19937_64 random(12345);
  std::uniform_int_distribution<std::uint64_t> weight(0, 1'000'000);
  for (std::uint32_t count : {1u, 2u, 3u, 7u, 16u}) {
    std::vector<std::uint64_t> weights(100);
    for (auto& w : weights) w = weight(random);
    auto shards = assign_shards(weights, count);
    CAPTURE(count);
    REQUIRE(shards.size() == weights.size());
    CHECK(std::all_of(shards.begin(), shards.end(),
                      [&](std::uint32_t s) { return s >= 1 && s <= count; }));
  }
}

TEST_CASE("shard: the same listing gives the same assignment") {
  std::mt19937_64 random(7);
  std::uniform_int_distribution<std::uint64_t> weight(0, 50);  // many ties
  std::vector<std::uint64_t> weights(500);
  for (auto& w : weights) w = weight(random);
  auto first = assign_shards(weights, 9);
  auto second = assign_shards(weights, 9);
  CHECK(first == second);
}

TEST_CASE("shard: loads differ by at most the heaviest group") {
  std::mt19937_64 random(2024);
  std::uniform_int_distribution<std::size_t> groups(1, 300);
  std::uniform_int_distribution<std::uint32_t> shard_count(1, 20);
  std::uniform_int_distribution<std::uint64_t> weight(0, 1ull << 40);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<std::uint64_t> weights(groups(random));
    for (auto& w : weights) w = weight(random);
    auto count = shard_count(random);
    auto shards = assign_shards(weights, count);
    auto load = loads(weights, shards, count);
    auto [lightest, heaviest] = std::minmax_element(load.begin() + 1, load.end());
    auto largest = *std::max_element(weights.begin(), weights.end());
    CAPTURE(trial);
    CAPTURE(count);
    CHECK(*heaviest - *lightest <= largest);
  }
}

TEST_CASE("shard: equal weights are dealt out in turn") {
  std::vector<std::uint64_t> weights(8, 100);
  auto shards = assign_shards(weights, 4);
  CHECK(shards == std::vector<std::uint32_t>{1, 2, 3, 4, 1, 2, 3, 4});
  auto load = loads(weights, shards, 4);
  CHECK(load == std::vector<std::uint64_t>{0, 200, 200, 200, 200});
}

TEST_CASE("shard: the heaviest group goes to shard 1, the next to the lightest shard") {
  // 10 -> 1; 7 -> 2; 5 -> 3; 3 -> 3 (5 is the lightest); 1 -> 2 (7 < 8).
  std::vector<std::uint64_t> weights{3, 10, 1, 7, 5};
  auto shards = assign_shards(weights, 3);
  CHECK(shards == std::vector<std::uint32_t>{3, 1, 2, 2, 3});
  CHECK(assign_shards({1, 2, 3, 999}, 4)[3] == 1);
}

TEST_CASE("shard: more shards than groups leaves some shards empty") {
  auto shards = assign_shards({5, 9, 1}, 8);
  CHECK(shards == std::vector<std::uint32_t>{2, 1, 3});
  CHECK(assign_shards({}, 4).empty());
  CHECK(assign_shards({}, 1).empty());
}

TEST_CASE("shard: no shards at all is a programming error, not a crash") {
  CHECK_THROWS_AS(assign_shards({1, 2}, 0), std::invalid_argument);
}

TEST_CASE("shard: one shard takes everything") {
  std::vector<std::uint64_t> weights{4, 0, 17, 17, 1};
  CHECK(assign_shards(weights, 1) == std::vector<std::uint32_t>(weights.size(), 1));
}

TEST_CASE("shard: groups of no bytes go to the lowest-numbered lightest shard") {
  // A tie goes to the lowest number, and adding 0 bytes breaks no tie.
  CHECK(assign_shards({0, 0, 0}, 2) == std::vector<std::uint32_t>{1, 1, 1});
  CHECK(assign_shards({0, 6, 0}, 3) == std::vector<std::uint32_t>{2, 1, 2});
}

}  // namespace
}  // namespace featpool
