// The generalized mean (GeM): (mean over the window of clamp(x, min =
// eps)^p)^(1/p). Every block's elements become clamp(x, eps)^p in float64
// and go to an average's kernel, which sums them exactly as --op avg sums
// its elements; the root is taken of each average at the end.

#include <charconv>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "pool_kernel.hpp"
#include <fmt/format.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include "featpool/element.hpp"
#include "featpool/error.hpp"

namespace featpool {
namespace {

// consume()'s blocks of more elements than this are raised to the power on
// several threads; a stream's are not (each stream has a thread already).
constexpr std::size_t kParallelElements = std::size_t{1} << 16;

// Room for a block's powers, never initialized: each is written before
// it is read.
class power_buffer {
 public:
  std::span<double> of(std::size_t count) {
    if (count > capacity_) {
      data_ = std::make_unique_for_overwrite<double[]>(count);
      capacity_ = count;
    }
    return {data_.get(), count};
  }

 private:
  std::unique_ptr<double[]> data_;
  std::size_t capacity_ = 0;
};

// clamp(x, eps)^p of values[begin, end), into powers. A NaN stays NaN, as
// in torch's clamp; p = 3, the usual one, is two multiplications, in a
// loop of its own so that it vectorizes.
template <class T>
void raise_range(const T* values, double* powers, std::size_t begin, std::size_t end,
                 const gem_params& gem) {
  const double eps = gem.eps;
  if (gem.p == 3.0) {
    for (std::size_t i = begin; i < end; ++i) {
      double x = to_double(values[i]);
      x = x < eps ? eps : x;
      powers[i] = x * x * x;
    }
    return;
  }
  for (std::size_t i = begin; i < end; ++i) {
    double x = to_double(values[i]);
    powers[i] = std::pow(x < eps ? eps : x, gem.p);
  }
}

// The powers of every element of `block`, as bytes for the average.
std::span<const std::byte> raise(dtype type, std::span<const std::byte> block,
                                 const gem_params& gem, power_buffer& buffer, bool parallel) {
  return visit_dtype(type, [&]<class T>(std::type_identity<T>) {
    auto values = elements_of<T>(block);
    std::span<double> powers = buffer.of(values.size());
    if (!parallel || values.size() < kParallelElements) {
      raise_range(values.data(), powers.data(), 0, values.size(), gem);
    } else {
      tbb::parallel_for(tbb::blocked_range<std::size_t>(0, values.size(), kParallelElements),
                        [&](const auto& part) {
                          raise_range(values.data(), powers.data(), part.begin(), part.end(), gem);
                        });
    }
    return std::as_bytes(powers);
  });
}

class gem_stream final : public pooler::stream {
 public:
  gem_stream(std::unique_ptr<pooler::stream> average, dtype type, gem_params gem)
      : average_(std::move(average)), type_(type), gem_(gem) {}
  void consume(std::span<const std::byte> block) override {
    average_->consume(raise(type_, block, gem_, powers_, false));
  }

 private:
  std::unique_ptr<pooler::stream> average_;
  dtype type_;
  gem_params gem_;
  power_buffer powers_;
};

class gem_kernel final : public pooler::kernel {
 public:
  gem_kernel(const tensor_info& input, const pool_request& request)
      : type_(*input.type),
        gem_(request.gem),
        output_type_(request.output_type),
        shape_(pooled_shape(input.shape, request)),
        average_(make_window_kernel(as_float64(input), average_of_powers(request))) {}

  void consume(std::span<const std::byte> block) override {
    average_->consume(raise(type_, block, gem_, powers_, true));
  }

  std::unique_ptr<pooler::stream> open_stream(std::uint64_t first) override {
    return std::make_unique<gem_stream>(average_->open_stream(first), type_, gem_);
  }

  std::uint64_t unit_length() const override { return average_->unit_length(); }

  pooled_tensor finish() override {
    auto values = std::make_unique_for_overwrite<double[]>(cell_count(shape_));
    finish_into(values.get());
    return narrowed(shape_, values.get(), output_type_);
  }

  // The root of each average; every NaN as the one quiet NaN.
  void finish_into(double* values) override {
    const std::uint64_t count = cell_count(shape_);
    average_->finish_into(values);
    const double root = 1.0 / gem_.p;
    for (std::uint64_t i = 0; i < count; ++i) {
      double value = std::pow(values[i], root);
      values[i] = std::isnan(value) ? std::numeric_limits<double>::quiet_NaN() : value;
    }
  }

 private:
  static tensor_info as_float64(tensor_info input) {
    input.type = dtype::float64;
    input.nbytes = input.element_count() * sizeof(double);
    return input;
  }

  static pool_request average_of_powers(pool_request request) {
    request.op = pool_op::avg;
    request.output_type = dtype::float64;
    return request;
  }

  dtype type_;
  gem_params gem_;
  dtype output_type_;
  std::vector<std::uint64_t> shape_;
  std::unique_ptr<pooler::kernel> average_;
  power_buffer powers_;  // consume()'s block, raised
};

}  // namespace

std::unique_ptr<pooler::kernel> make_gem_kernel(const tensor_info& input,
                                                const pool_request& request) {
  return std::make_unique<gem_kernel>(input, request);
}

}  // namespace featpool
