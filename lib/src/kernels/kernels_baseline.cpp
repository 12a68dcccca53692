// The pooling loops compiled for baseline (flags in lib/CMakeLists.txt).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "column_kernels.hpp"

namespace featpool::kernels {
namespace baseline {
#define FEATPOOL_VECTOR_BYTES 16
#include "column_kernels.inl"
#undef FEATPOOL_VECTOR_BYTES
}  // namespace baseline

const kernel_set& baseline_kernels() { return baseline::kernels_of(instruction_set::baseline); }

}  // namespace featpool::kernels
