// A spatial pyramid (--size 1,2,4): one kernel per level, every one fed the
// same blocks, so the input is read once. Each level's result is flattened
// as --flatten flattens it, and the levels' features are put side by side,
// sample by sample: for NCHW, torch.cat([pool(x, s).flatten(1) for s in
// sizes], 1).

#include <cstring>
#include <memory>
#include <vector>

#include "fanout_stream.hpp"
#include "pool_kernel.hpp"

namespace featpool {
namespace {

class pyramid_kernel final : public pooler::kernel {
 public:
  pyramid_kernel(const tensor_info& input, const pool_request& request)
      : batch_axis_(request.axes.batch_axis),
        output_type_(request.output_type),
        shape_(pooled_shape(input.shape, request)) {
    for (const auto& level : request.pyramid) {
      auto one = pyramid_level(request, level);
      level_shapes_.push_back(pooled_shape(input.shape, one));
      levels_.push_back(make_op_kernel(input, one));
    }
  }

  void consume(std::span<const std::byte> block) override {
    for (auto& level : levels_) level->consume(block);
  }

  std::unique_ptr<pooler::stream> open_stream(std::uint64_t first) override {
    std::vector<std::unique_ptr<pooler::stream>> streams;
    for (auto& level : levels_) streams.push_back(level->open_stream(first));
    return std::make_unique<fanout_stream>(std::move(streams));
  }

  // The units of the input's layout, whatever the output lengths: the same
  // for every level.
  std::uint64_t unit_length() const override { return levels_.front()->unit_length(); }

  // Each level as its kernel rounds it, so an integer maximum stays exact.
  pooled_tensor finish() override {
    pooled_tensor out;
    out.shape = shape_;
    out.type = output_type_;
    const std::size_t item = dtype_size(output_type_);
    out.data.resize(cell_count(shape_) * item);
    std::uint64_t offset = 0;
    for (std::size_t l = 0; l < levels_.size(); ++l) {
      auto level = levels_[l]->finish();
      levels_[l].reset();
      offset += place_level(level.data.data(), level_shapes_[l], item, out.data.data(), offset);
    }
    return out;
  }

  void finish_into(double* values) override {
    std::uint64_t offset = 0;
    for (std::size_t l = 0; l < levels_.size(); ++l) {
      paged_vector<double> level(cell_count(level_shapes_[l]));
      levels_[l]->finish_into(level.data());
      levels_[l].reset();
      offset += place_level(reinterpret_cast<const std::byte*>(level.data()), level_shapes_[l],
                            sizeof(double), reinterpret_cast<std::byte*>(values), offset);
    }
  }

 private:
  // Copies one level's results (elements of `item` bytes) into its columns
  // of the output, from column `offset` on, and returns how many columns it
  // has. A sample's results are, in layout order, a run of the axes after N
  // for each index of the axes before it.
  std::uint64_t place_level(const std::byte* level, const std::vector<std::uint64_t>& shape,
                            std::size_t item, std::byte* out, std::uint64_t offset) const {
    std::uint64_t outer = 1, samples = 1, inner = 1;
    for (std::size_t l = 0; l < shape.size(); ++l) {
      if (batch_axis_ && l < *batch_axis_) outer *= shape[l];
      if (batch_axis_ && l == *batch_axis_) samples = shape[l];
      if (!batch_axis_ || l > *batch_axis_) inner *= shape[l];
    }
    const std::uint64_t features = shape_.back();
    for (std::uint64_t o = 0; o < outer; ++o) {
      for (std::uint64_t n = 0; n < samples; ++n) {
        std::memcpy(out + (n * features + offset + o * inner) * item,
                    level + (o * samples + n) * inner * item, inner * item);
      }
    }
    return outer * inner;
  }

  std::optional<std::size_t> batch_axis_;
  dtype output_type_;
  std::vector<std::uint64_t> shape_;  // (N, features) or (features)
  std::vector<std::vector<std::uint64_t>> level_shapes_;
  std::vector<std::unique_ptr<pooler::kernel>> levels_;
};

}  // namespace

pool_request pyramid_level(const pool_request& request, const std::vector<std::uint64_t>& level) {
  pool_request one = request;
  one.output_spatial = level;
  one.pyramid.clear();
  one.normalize = normalization::none;
  return one;
}

std::unique_ptr<pooler::kernel> make_pyramid_kernel(const tensor_info& input,
                                                    const pool_request& request) {
  return std::make_unique<pyramid_kernel>(input, request);
}

}  // namespace featpool
