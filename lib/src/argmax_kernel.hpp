#pragma once
// --indices: where each window's maximum is, as PyTorch's
// adaptive_max_pool{1,2,3}d(..., return_indices=True) gives it, fed the
// same blocks as the kernel of the maximum itself, which keeps the values.

#include <cstdint>
#include <memory>
#include <span>

#include "featpool/pool.hpp"
#include "featpool/source.hpp"

namespace featpool {

class argmax_kernel {
 public:
  virtual ~argmax_kernel() = default;
  // As pooler::kernel's: blocks in storage order, or streams from unit
  // boundaries running alongside each other.
  virtual void consume(std::span<const std::byte> block) = 0;
  virtual std::unique_ptr<pooler::stream> open_stream(std::uint64_t first) = 0;
  // Every window's argmax as an int64 offset into the input's spatial
  // plane, in the pooled shape (layout order, C order).
  virtual pooled_tensor finish() = 0;
};

// The argmax of every window of `request` (op max, no pyramid).
std::unique_ptr<argmax_kernel> make_argmax_kernel(const tensor_info& input,
                                                  const pool_request& request);

}  // namespace featpool
