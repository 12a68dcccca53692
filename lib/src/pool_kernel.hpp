#pragma once
// The kernels behind featpool::pooler: one per window op (pool.cpp: avg,
// max, sum, min, and the generalized mean, an average of powers), one that
// runs an average and a maximum over the same pass and combines them
// (avg_max_kernel.cpp), the log-sum-exp (lse_kernel.cpp), and a spatial
// pyramid of any of them, every level fed the same blocks
// (pyramid_kernel.cpp).

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "featpool/element.hpp"
#include "featpool/pool.hpp"

namespace featpool {

class pooler::kernel {
 public:
  virtual ~kernel() = default;
  virtual void consume(std::span<const std::byte> block) = 0;
  virtual std::unique_ptr<stream> open_stream(std::uint64_t first) = 0;
  virtual std::uint64_t unit_length() const = 0;
  virtual pooled_tensor finish() = 0;
  // Instead of finish(): every cell's result as a double, in the output's
  // order, into `values` (one per cell).
  virtual void finish_into(double* values) = 0;
};

// How many cells a pooled tensor of `shape` has.
inline std::uint64_t cell_count(const std::vector<std::uint64_t>& shape) {
  std::uint64_t count = 1;
  for (auto extent : shape) count *= extent;
  return count;
}

// A result as the output dtype stores it.
template <class Out, class Acc>
Out narrow(Acc value) {
  if constexpr (std::is_same_v<Out, float16_bits>) {
    return to_float16(static_cast<double>(value));
  } else {
    return static_cast<Out>(value);
  }
}

// A pooled tensor of `shape` holding `values` rounded once to `type`.
pooled_tensor narrowed(std::vector<std::uint64_t> shape, const double* values, dtype type);

// --normalize l2 on float64 results of `shape`, in place (pooled_values.cpp):
// along `axis` for normalization::channels; for normalization::samples,
// over everything but `axis` (the batch axis, or nothing: one vector).
void normalize_l2(double* values, const std::vector<std::uint64_t>& shape,
                  std::optional<std::size_t> axis, normalization how);

// The kernel of request.op, one level of a pyramid or the whole request.
std::unique_ptr<pooler::kernel> make_op_kernel(const tensor_info& input,
                                               const pool_request& request);

// The kernel of an op that reduces each window on its own (avg, max, sum,
// min, gem), whose results can also be had a range of cells at a time.
class window_kernel : public pooler::kernel {
 public:
  // Instead of finish(): the results of cells [first, first + count), as
  // finish_into gives them, into `values` (one per cell). Ranges may be
  // asked for in any order, each at most once.
  virtual void finish_range(double* values, std::uint64_t first, std::uint64_t count) = 0;
};

// avg, max, sum, min or gem of every window.
std::unique_ptr<window_kernel> make_window_kernel(const tensor_info& input,
                                                  const pool_request& request);

// avgmax or catavgmax: request.op must be one of them.
std::unique_ptr<pooler::kernel> make_avg_max_kernel(const tensor_info& input,
                                                    const pool_request& request);

// The log-sum-exp (lse_kernel.cpp).
std::unique_ptr<pooler::kernel> make_lse_kernel(const tensor_info& input,
                                                const pool_request& request);

// The request of one level of request.pyramid: its output lengths, no pyramid.
pool_request pyramid_level(const pool_request& request, const std::vector<std::uint64_t>& level);

// A spatial pyramid (pyramid_kernel.cpp): request.pyramid must have levels.
std::unique_ptr<pooler::kernel> make_pyramid_kernel(const tensor_info& input,
                                                    const pool_request& request);

}  // namespace featpool
