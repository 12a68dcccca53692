#pragma once
// bfloat16 tensors (PyTorch's torch.bfloat16), as float32. A bfloat16 is the
// upper 16 bits of a float32, so it widens to float32 exactly by appending 16
// zero bits. The kernels, statistics and sinks have no bfloat16 loops of
// their own: a bfloat16 tensor is widened as it is read and from then on is
// a float32 tensor, pooled with float32's rules (sums in float64, float32
// out under --dtype auto), giving the bits pooling torch's x.float() gives.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "featpool/dtype.hpp"
#include "featpool/source.hpp"

namespace featpool {

// The float32 whose upper half `bits` are.
float bfloat16_to_float(std::uint16_t bits);

// The type a tensor stored as `stored` is computed on as: float32 for
// bfloat16, `stored` itself otherwise.
dtype computed_type(dtype stored);

// `info` as the computations see it: a bfloat16 tensor becomes float32 (its
// type and nbytes); its dtype_string, which reports show, stays "bfloat16".
tensor_info computed_info(tensor_info info);

// Opens a reader for source.tensors()[index] whose blocks hold elements of
// computed_type: bfloat16 tensors are widened block by block.
std::unique_ptr<block_reader> open_computed(tensor_source& source, std::size_t index);

}  // namespace featpool
