#pragma once
// Adaptive average and max pooling over every spatial axis at once, with
// PyTorch's windows (windows.hpp), fed block by block from a reader so a
// tensor of any size pools in memory bounded by its output.
//
// Determinism: every output cell combines its window's elements in one
// fixed order, set by the shape, the layout and the output size alone (see
// typed_kernel in pool.cpp): never by block boundaries, thread count or
// the processor's vector width. Threads only ever pool parts that feed
// disjoint cells.

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "featpool/dtype.hpp"
#include "featpool/layout.hpp"
#include "featpool/page_memory.hpp"
#include "featpool/source.hpp"

namespace featpool {

class argmax_kernel;

// avgmax is timm's 0.5 · (avg + max); catavgmax concatenates avg and max
// on the channel axis, avg first, so C doubles; gem is the generalized mean
// (gem_params); lse is the log-sum-exp, (1/r)·log(mean of exp(r·x)).
enum class pool_op { avg, max, sum, min, avgmax, catavgmax, gem, lse };

// An op's name as --op takes it; throws usage_error for anything else.
pool_op parse_pool_op(std::string_view text);
std::string_view pool_op_name(pool_op op);
// avgmax and catavgmax: pooled by an average and a maximum in one pass.
bool combines_avg_and_max(pool_op op);

// The generalized mean of a window, as in the GeM retrieval papers and
// timm's GeneralizedMeanPool: (mean of clamp(x, min = eps)^p)^(1/p).
struct gem_params {
  double p = 3.0;
  double eps = 1e-6;
};

// --p and --eps as given (empty when absent); throws usage_error for a value
// that is not a positive finite number.
gem_params parse_gem_params(std::string_view p, std::string_view eps);

// lse's sharpness r: large r tends to the maximum, small r to the average.
inline constexpr double kDefaultLseR = 1.0;

// --r as given (empty when absent), checked as --p is.
double parse_lse_r(std::string_view r);

// The dtype a pooled tensor is written in: `--dtype auto` keeps integer and
// bool inputs' dtype for max and min (unless normalized), gives float64 for
// float64 inputs and for sums of integers or bools, and float32 for
// everything else; an explicit float type wins.
dtype pooled_dtype(pool_op op, dtype input, std::optional<dtype> requested, bool normalized);

// The instruction set the pooling loops run with: "avx512", "avx2" or
// "baseline", the widest the processor has unless the FEATPOOL_KERNELS
// environment variable names one (to test or compare them on one machine).
// Throws usage_error for a name that is unknown or that the processor
// cannot run.
std::string_view pooling_instruction_set();

// Pooled outputs larger than this are refused before anything is allocated.
inline constexpr std::uint64_t kMaxPooledBytes = std::uint64_t{4} << 30;

// --normalize l2: every feature vector divided by its L2 norm, as
// F.normalize(x, p=2, dim, eps=1e-12) does, the vector running along the C
// axis (`channels`) or over each sample's whole output (`samples`: with
// --flatten, and for a pyramid).
enum class normalization { none, channels, samples };

// F.normalize's floor under the norm, so that a zero vector stays zero.
inline constexpr double kNormalizeEps = 1e-12;

struct pool_request {
  pool_op op = pool_op::avg;
  layout axes;                                // the input's layout, rank matching its shape
  std::vector<std::uint64_t> output_spatial;  // one length per spatial axis
  dtype output_type = dtype::float32;
  int threads = 1;              // workers for large blocks; results do not depend on it
  gem_params gem;               // for pool_op::gem
  double lse_r = kDefaultLseR;  // for pool_op::lse
  // A spatial pyramid (--size 1,2,4): the output lengths of each level, two
  // or more; empty otherwise. Every level is pooled from the same pass and
  // flattened, and the levels are concatenated sample by sample, so the
  // output is (N, C · total cells), or (C · total cells) without N.
  std::vector<std::vector<std::uint64_t>> pyramid{};
  normalization normalize = normalization::none;
  // --indices: also the argmax of every window (pooler::indices). op max
  // only, without a pyramid.
  bool indices = false;
};

// A pooled tensor: same layout as the input, C order, native byte order.
struct pooled_tensor {
  std::vector<std::uint64_t> shape;
  dtype type = dtype::float32;
  byte_buffer data;
};

// The shape `request` turns `input_shape` into (a pyramid's is flat).
std::vector<std::uint64_t> pooled_shape(const std::vector<std::uint64_t>& input_shape,
                                        const pool_request& request);

// --flatten: (N, rest), or (rest) without N, the rest in the layout's order.
std::vector<std::uint64_t> flattened_shape(const std::vector<std::uint64_t>& shape,
                                           const layout& axes);

// Reshapes a pooled tensor as --flatten asks, moving N to the front first
// when the layout does not start with it.
void flatten(pooled_tensor& tensor, const layout& axes);

class pooler {
 public:
  // `input` must be numeric with a shape of the layout's rank and no spatial
  // length of 0; the caller checks (plan does).
  pooler(const tensor_info& input, const pool_request& request);
  ~pooler();
  pooler(const pooler&) = delete;
  pooler& operator=(const pooler&) = delete;

  // Feeds the next block of elements, in the input's memory order. Large
  // blocks are split between request.threads workers.
  void consume(std::span<const std::byte> block);

  // Independent streams, for a reader that reads several parts of a tensor
  // at once (pread from several threads): element boundaries that cut the
  // tensor into at most `parts` ranges feeding disjoint cells, from 0 to
  // `element_count`. A stream opened at one boundary and fed, in memory
  // order, every element up to the next may run alongside the others;
  // finish() comes after all of them. consume() is not mixed with streams.
  class stream;
  std::vector<std::uint64_t> independent_ranges(std::uint64_t element_count, int parts) const;
  std::unique_ptr<stream> open_stream(std::uint64_t first);
  // The pooled tensor, once every element was fed.
  pooled_tensor finish();
  // With request.indices, after finish(): where each window's maximum is,
  // as PyTorch's return_indices=True gives it: int64 offsets into the
  // input's spatial plane (its spatial axes in layout order, C order), in
  // the pooled shape. Of equal maxima the smallest offset; in a window
  // holding NaN, the largest offset of a NaN.
  pooled_tensor indices();

  class kernel;

 private:
  std::unique_ptr<kernel> kernel_;
  std::unique_ptr<argmax_kernel> argmax_;  // with request.indices
  std::vector<std::uint64_t> shape_;
  dtype output_type_;
  normalization normalize_;
  std::optional<std::size_t> normalize_axis_;
};

class pooler::stream {
 public:
  virtual ~stream() = default;
  // Feeds the stream's next block of elements, in memory order.
  virtual void consume(std::span<const std::byte> block) = 0;
};

}  // namespace featpool
