#pragma once
// The format-neutral view of a tensor file: what it holds (tensor_info) and
// how to stream one tensor's elements (block_reader). The npy, npz, hdf5,
// safetensors and torch_pt modules implement tensor_source; everything downstream of discovery sees
// only these types.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "featpool/dtype.hpp"

namespace featpool {

enum class file_format { npy, npz, hdf5, safetensors, torch };

// Memory order of the elements as stored: C (last axis fastest) or Fortran.
enum class memory_order { c, fortran };

std::string_view file_format_name(file_format format);

// Readers hand out blocks of about this size: big enough to amortise calls,
// small enough that memory stays bounded whatever the tensor's size.
inline constexpr std::size_t kBlockBytes = std::size_t{4} << 20;

// Tensors of higher rank are refused, as numpy refuses them.
inline constexpr std::size_t kMaxRank = 32;

struct tensor_info {
  std::string file;  // the path as the user named it
  std::string name;  // HDF5 dataset path, NPZ member, NPY stem, or a torch.save container path
  file_format format = file_format::npy;
  std::vector<std::uint64_t> shape;  // empty for a scalar
  std::optional<dtype> type;         // set only for numeric (poolable) tensors
  std::string dtype_string;          // numpy's name, or numpy's dtype string
  byte_order stored_byte_order = byte_order::none;
  memory_order order = memory_order::c;
  std::uint64_t nbytes = 0;                          // element count times numpy's item size
  std::optional<std::vector<std::uint64_t>> chunks;  // HDF5 chunk shape
  std::vector<std::string> filters;                  // HDF5 filter pipeline, in order
  // safetensors: the tensor's byte range, counted from the data's start.
  std::optional<std::array<std::uint64_t, 2>> data_offsets;

  bool numeric() const noexcept { return type.has_value(); }
  std::uint64_t element_count() const noexcept;
};

// How a tensor is named on the command line and in messages: the file for
// an NPY file, which holds one unnamed array; FILE:NAME otherwise.
std::string tensor_reference(const tensor_info& info);

// Where a tensor's elements lie in a file as one run of raw bytes (an NPY
// file's data, an unfiltered contiguous HDF5 dataset), in its memory order:
// such a tensor can be read with pread in parallel, each thread taking its
// own part, instead of block by block through next().
struct raw_extent {
  int fd = -1;               // open for reading; owned by the reader
  std::uint64_t offset = 0;  // of the first element's first byte
  bool swap_bytes = false;   // stored in the other byte order
};

// Reads the elements of `info` from `first` on, as many as fill `block`
// (elements of `item` bytes), from where `raw` says they lie, in native byte
// order. A file that ends first was cut short while featpool read it (its
// size was checked when it was listed). Throws featpool::error naming the
// tensor.
void read_raw_elements(const raw_extent& raw, const tensor_info& info, std::size_t item,
                       std::uint64_t first, std::span<std::byte> block);

// Streams one tensor's elements: native byte order, the tensor's memory
// order, every block a whole number of elements.
class block_reader {
 public:
  virtual ~block_reader() = default;
  // The next block; empty once all elements were handed out. The bytes stay
  // valid until the next call.
  virtual std::span<const std::byte> next() = 0;
  // Set when the elements can be read directly from the file (see
  // raw_extent); next() still works either way.
  virtual std::optional<raw_extent> raw() const { return std::nullopt; }
};

// One opened input file (or stream) and the tensors it holds.
class tensor_source {
 public:
  virtual ~tensor_source() = default;
  virtual const std::vector<tensor_info>& tensors() const = 0;
  // Opens a reader for tensors()[index], which must be numeric.
  virtual std::unique_ptr<block_reader> open(std::size_t index) = 0;
  // The attributes of tensors()[index] by name (HDF5's, or a safetensors
  // file's __metadata__); null for formats without any. Read only when asked: listing and pooling
  // never need them.
  virtual nlohmann::json attributes(std::size_t /*index*/) { return nullptr; }
};

}  // namespace featpool
