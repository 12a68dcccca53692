#pragma once
// Two kernels' streams fed the same blocks, so one pass over the input
// serves both: avgmax's average and maximum, a maximum and its argmax.

#include <memory>
#include <span>

#include "featpool/pool.hpp"

namespace featpool {

class paired_stream final : public pooler::stream {
 public:
  paired_stream(std::unique_ptr<pooler::stream> first, std::unique_ptr<pooler::stream> second)
      : first_(std::move(first)), second_(std::move(second)) {}
  void consume(std::span<const std::byte> block) override {
    first_->consume(block);
    second_->consume(block);
  }

 private:
  std::unique_ptr<pooler::stream> first_;
  std::unique_ptr<pooler::stream> second_;
};

}  // namespace featpool
