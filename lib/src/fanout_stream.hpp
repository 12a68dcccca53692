#pragma once
// Several kernels' streams fed the same blocks, so one pass over the input
// serves them all: avgmax's average and maximum, a maximum and its argmax,
// a pyramid's levels.

#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "featpool/pool.hpp"

namespace featpool {

class fanout_stream final : public pooler::stream {
 public:
  explicit fanout_stream(std::vector<std::unique_ptr<pooler::stream>> streams)
      : streams_(std::move(streams)) {}
  fanout_stream(std::unique_ptr<pooler::stream> first, std::unique_ptr<pooler::stream> second) {
    streams_.push_back(std::move(first));
    streams_.push_back(std::move(second));
  }
  void consume(std::span<const std::byte> block) override {
    for (auto& each : streams_) each->consume(block);
  }

 private:
  std::vector<std::unique_ptr<pooler::stream>> streams_;
};

}  // namespace featpool
