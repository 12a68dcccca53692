#pragma once
// Readers that go around HDF5's data path for the two common layouts, where
// H5Dread is slow: it converts, caches and (for chunks) decompresses on one
// thread at a time under the library's lock.
//
//  - A contiguous, unfiltered dataset in the default (sec2) file driver is
//    one run of bytes in the file: the reader reads it with pread from a
//    duplicate of HDF5's own descriptor, and offers it as a raw_extent so
//    the caller can read it in parallel.
//  - A chunked dataset whose chunks are slabs of the C-order data (every
//    chunk dimension 1 up to some axis, then any, then the dataset's whole
//    extent) and whose filters are only shuffle, deflate and fletcher32 is
//    read chunk by chunk with H5Dread_chunk, each chunk's raw bytes decoded
//    here in parallel (libdeflate, then unshuffle) straight into the block.
//    A block is whole chunks: about kBlockBytes, or two chunks per thread
//    of the arena shared among the open chunk readers, at most
//    kMaxChunkedBlockBytes unless one chunk is larger. Each thread that
//    decodes keeps buffers for one raw and one inflated chunk.
//
// Everything else (other filters, other chunk shapes, types HDF5 must
// convert: enums, bool, bitfields, odd layouts) keeps make_h5_block_reader.

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "h5_handle.hpp"

#include "featpool/source.hpp"

namespace featpool::detail {

// An open file descriptor, closed once.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept;
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd();
  int get() const noexcept { return fd_; }

 private:
  int fd_ = -1;
};

// Where a contiguous dataset's elements are, with the descriptor to read
// them from (a duplicate, owned, of the one HDF5 opened).
struct contiguous_storage {
  unique_fd fd;
  std::uint64_t offset = 0;
  bool swap_bytes = false;
};

// Set when the open dataset is stored as one run of its elements' bytes
// (see above); nullopt sends the caller to the library's path. Called under
// h5_lock.
std::optional<contiguous_storage> find_contiguous_storage(hid_t file, hid_t dataset, hid_t dcpl,
                                                          hid_t file_type, hid_t memory_type,
                                                          const tensor_info& info,
                                                          const h5_context& where);

// Reads a dataset found by find_contiguous_storage, without HDF5.
std::unique_ptr<block_reader> make_contiguous_reader(contiguous_storage storage,
                                                     const tensor_info& info, h5_context where);

// A filter of a dataset's pipeline, with its parameters.
struct pipeline_stage {
  int id = 0;  // H5Z_filter_t
  std::vector<unsigned> values;
};

// How a dataset's chunks tile it as slabs, and how to decode them.
struct chunk_slabs {
  std::vector<pipeline_stage> pipeline;  // in the order HDF5 applies them on writing
  std::vector<std::uint64_t> chunk;      // the chunk shape
  std::size_t axis = 0;                  // chunk dims are 1 before it and whole after it
  bool swap_bytes = false;
  std::vector<std::byte> fill;  // one element of the fill value, native
};

// Set when the open dataset's chunks can be decoded here (see above);
// nullopt sends the caller to the library's path. Called under h5_lock.
std::optional<chunk_slabs> find_chunk_slabs(hid_t dcpl, hid_t file_type, hid_t memory_type,
                                            const tensor_info& info, const h5_context& where);

// Reads a dataset found by find_chunk_slabs; the file and the dataset stay
// open as long as the reader.
std::unique_ptr<block_reader> make_chunk_slab_reader(h5_handle file, h5_handle dataset,
                                                     chunk_slabs slabs, const tensor_info& info,
                                                     h5_context where);

}  // namespace featpool::detail
