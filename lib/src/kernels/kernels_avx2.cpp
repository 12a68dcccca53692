// The pooling loops compiled for avx2 (flags in lib/CMakeLists.txt).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "column_kernels.hpp"

namespace featpool::kernels {
namespace avx2 {
#define FEATPOOL_VECTOR_BYTES 32
#include "column_kernels.inl"
#undef FEATPOOL_VECTOR_BYTES
}  // namespace avx2

const kernel_set& avx2_kernels() { return avx2::kernels_of(instruction_set::avx2); }

}  // namespace featpool::kernels
