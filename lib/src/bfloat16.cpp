#include "featpool/bfloat16.hpp"

#include <bit>
#include <cstring>
#include <span>
#include <vector>

namespace featpool {
namespace {

// Hands out the blocks of a bfloat16 reader as float32, each twice the size.
class widening_reader final : public block_reader {
 public:
  explicit widening_reader(std::unique_ptr<block_reader> narrow) : narrow_(std::move(narrow)) {}

  std::span<const std::byte> next() override {
    auto block = narrow_->next();
    std::size_t count = block.size() / sizeof(std::uint16_t);
    widened_.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
      std::uint16_t bits;
      std::memcpy(&bits, block.data() + i * sizeof bits, sizeof bits);
      widened_[i] = bfloat16_to_float(bits);
    }
    return std::as_bytes(std::span<const float>(widened_));
  }

 private:
  std::unique_ptr<block_reader> narrow_;
  std::vector<float> widened_;
};

}  // namespace

float bfloat16_to_float(std::uint16_t bits) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

dtype computed_type(dtype stored) { return stored == dtype::bfloat16 ? dtype::float32 : stored; }

tensor_info computed_info(tensor_info info) {
  if (info.type == dtype::bfloat16) {
    info.type = dtype::float32;
    info.nbytes = info.element_count() * dtype_size(dtype::float32);
  }
  return info;
}

std::unique_ptr<block_reader> open_computed(tensor_source& source, std::size_t index) {
  auto reader = source.open(index);
  if (source.tensors().at(index).type != dtype::bfloat16) return reader;
  return std::make_unique<widening_reader>(std::move(reader));
}

}  // namespace featpool
