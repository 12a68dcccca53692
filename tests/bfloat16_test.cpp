#include "featpool/bfloat16.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <doctest/doctest.h>

namespace featpool {
namespace {

// One bfloat16 tensor of the given bits, handed out two elements a block.
class bfloat16_source final : public tensor_source {
 public:
  explicit bfloat16_source(std::vector<std::uint16_t> bits) : bits_(std::move(bits)) {
    tensor_info info;
    info.name = "x";
    info.shape = {bits_.size()};
    info.type = dtype::bfloat16;
    info.dtype_string = "bfloat16";
    info.nbytes = bits_.size() * 2;
    infos_.push_back(info);
  }
  const std::vector<tensor_info>& tensors() const override { return infos_; }
  std::unique_ptr<block_reader> open(std::size_t) override {
    class pairs final : public block_reader {
     public:
      explicit pairs(const std::vector<std::uint16_t>& bits) : bits_(bits) {}
      std::span<const std::byte> next() override {
        std::size_t n = std::min<std::size_t>(2, bits_.size() - at_);
        auto block = std::as_bytes(std::span(bits_.data() + at_, n));
        at_ += n;
        return block;
      }

     private:
      const std::vector<std::uint16_t>& bits_;
      std::size_t at_ = 0;
    };
    return std::make_unique<pairs>(bits_);
  }

 private:
  std::vector<std::uint16_t> bits_;
  std::vector<tensor_info> infos_;
};

TEST_CASE("bfloat16: widens exactly to the float32 of its upper half") {
  CHECK(bfloat16_to_float(0x3f80) == 1.0f);
  CHECK(bfloat16_to_float(0xc040) == -3.0f);
  CHECK(bfloat16_to_float(0x7f80) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(bfloat16_to_float(0x7fc0)));
  CHECK(bfloat16_to_float(0x0001) == 0x1p-133f);  // the smallest subnormal
  CHECK(std::signbit(bfloat16_to_float(0x8000)));
}

TEST_CASE("bfloat16: computed as float32, reported as bfloat16") {
  CHECK(computed_type(dtype::bfloat16) == dtype::float32);
  CHECK(computed_type(dtype::float16) == dtype::float16);
  CHECK(dtype_name(dtype::bfloat16) == "bfloat16");
  CHECK(dtype_size(dtype::bfloat16) == 2);
  CHECK(dtype_from_name("bfloat16") == dtype::bfloat16);
  bfloat16_source source({0x3f80, 0x4000, 0xbf80});
  auto info = computed_info(source.tensors()[0]);
  CHECK(info.type == dtype::float32);
  CHECK(info.nbytes == 12);
  CHECK(info.dtype_string == "bfloat16");
}

TEST_CASE("bfloat16: a reader is widened block by block") {
  bfloat16_source source({0x3f80, 0x4000, 0xbf80});
  auto reader = open_computed(source, 0);
  std::vector<float> values;
  for (auto block = reader->next(); !block.empty(); block = reader->next()) {
    REQUIRE(block.size() % sizeof(float) == 0);
    std::vector<float> part(block.size() / sizeof(float));
    std::memcpy(part.data(), block.data(), block.size());
    values.insert(values.end(), part.begin(), part.end());
  }
  CHECK(values == std::vector<float>{1.0f, 2.0f, -1.0f});
}

}  // namespace
}  // namespace featpool
