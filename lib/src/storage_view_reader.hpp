#pragma once
// The elements of a strided view into a storage (a PyTorch tensor: offset,
// sizes and strides in elements), handed out in C order of the view's shape,
// from a storage that can only be read front to back, as a zip member is.
//
// A contiguous view is read straight through. Any other view (a transpose,
// a permute, a slice of an inner axis, a broadcast stride of 0) is gathered
// block by block, each block's elements taken in one forward pass over the
// part of the storage they lie in. Memory is a block and its bookkeeping
// (about 16 bytes an element, at most a million elements) plus at most
// 16 MiB of the storage, whatever the tensor's size. A view that moves
// forward through its storage reads it about once; one that jumps back and
// forth across all of it (a transpose) reads it once per block: correct,
// but slow for storages of gigabytes.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "featpool/byte_stream.hpp"
#include "featpool/source.hpp"

namespace featpool::detail {

struct storage_view {
  std::uint64_t offset = 0;            // of the first element, in elements
  std::vector<std::uint64_t> shape;    // the view's sizes
  std::vector<std::uint64_t> strides;  // in elements, per axis
  std::size_t item_size = 1;           // bytes per element
  bool swap_bytes = false;             // stored in the other byte order
};

// Opens the storage anew, at its first byte.
using storage_opener = std::function<std::unique_ptr<byte_stream>()>;

// Reads `view`, which the caller checked lies within the storage; `file` and
// `tensor` name it in errors.
std::unique_ptr<block_reader> make_storage_view_reader(storage_opener open, storage_view view,
                                                       std::string file, std::string tensor);

// True when the view is its storage's elements from `offset` on, in C order.
bool is_contiguous(const storage_view& view);

}  // namespace featpool::detail
