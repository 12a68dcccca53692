#pragma once
// HDF5's shuffle and Fletcher32 filters undone outside the library, and
// byte swapping, for the readers that decode raw chunks themselves
// (h5_chunk_reader.cpp). Each matches what HDF5 1.10 does byte for byte.

#include <cstddef>
#include <cstdint>
#include <span>

namespace featpool::detail {

// Undoes HDF5's shuffle of `in` (element_size planes of bytes, one per byte
// position) into `out`, writing only out's first out.size() bytes, which
// may be fewer than in.size(). As in HDF5, trailing bytes that make no whole
// element stay where they are, and a buffer of one element (or of 1-byte
// elements) is not shuffled at all. `in` and `out` must not overlap.
void unshuffle(std::span<const std::byte> in, std::span<std::byte> out, std::size_t element_size);

// HDF5's Fletcher32 checksum (H5_checksum_fletcher32): 16-bit big-endian
// words, an odd last byte as the high half of a word.
std::uint32_t fletcher32(std::span<const std::byte> data);

// Whether `chunk` ends with a valid Fletcher32 checksum of the bytes before
// it, as HDF5 checks it: stored little-endian, either as computed or with
// the bytes of each half swapped (files from HDF5 before 1.6.3).
bool fletcher32_matches(std::span<const std::byte> chunk);

}  // namespace featpool::detail
