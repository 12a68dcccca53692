#pragma once
// Streams a numeric HDF5 dataset in blocks of about kBlockBytes, never the
// whole dataset at once, through H5Dread: the path for every dataset the
// direct readers (h5_direct_readers.hpp) leave to the library.
//
// A block is a hyperslab that is contiguous in C order: a range along one
// axis (the plan's `axis`) with every earlier index fixed and every later
// axis whole. Normally the axis is the first, so a block is a run of whole
// first-axis rows; only when one row alone is larger than a block does the
// reader move to the next axis. For chunked datasets the range is a multiple
// of the chunk's extent along that axis, so each chunk is decompressed once,
// unless that would make a block larger than kMaxChunkedBlockBytes.

#include <cstdint>
#include <memory>

#include "h5_handle.hpp"

#include "featpool/source.hpp"

namespace featpool::detail {

// A block of whole chunk rows may exceed kBlockBytes, up to this much; past
// it the reader splits chunk rows and keeps the chunks in HDF5's cache.
inline constexpr std::uint64_t kMaxChunkedBlockBytes = std::uint64_t{64} << 20;
// The most chunk cache a reader asks for, when blocks share chunks.
inline constexpr std::uint64_t kMaxChunkCacheBytes = std::uint64_t{256} << 20;

struct block_plan {
  std::size_t axis = 0;    // blocks are ranges along this axis
  std::uint64_t step = 1;  // the range's length (the last one may be shorter)
  // HDF5 chunk cache for the dataset when consecutive blocks read the same
  // chunks; 0 keeps HDF5's default.
  std::uint64_t chunk_cache_bytes = 0;
};

// Plans the blocks for a numeric tensor (its shape, dtype and chunks).
block_plan plan_blocks(const tensor_info& info);

// A reader over an open dataset: `memory_type` is the native type elements
// are read as (see memory_type_for), `info` the dataset as listed.
std::unique_ptr<block_reader> make_h5_block_reader(h5_handle file, h5_handle dataset,
                                                   h5_handle memory_type, const tensor_info& info,
                                                   const block_plan& plan, h5_context where);

}  // namespace featpool::detail
