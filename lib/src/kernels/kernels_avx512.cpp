// The pooling loops compiled for avx512 (flags in lib/CMakeLists.txt).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "column_kernels.hpp"

namespace featpool::kernels {
namespace avx512 {
#define FEATPOOL_VECTOR_BYTES 64
#include "column_kernels.inl"
#undef FEATPOOL_VECTOR_BYTES
}  // namespace avx512

const kernel_set& avx512_kernels() { return avx512::kernels_of(instruction_set::avx512); }

}  // namespace featpool::kernels
