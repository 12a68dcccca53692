#pragma once
// NPY: numpy's own array file. Versions 1.0, 2.0 and 3.0; every numeric dtype
// in any byte order, C or Fortran order. Non-numeric dtypes (strings,
// structured, complex, object) are described but their data is not read.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "featpool/byte_stream.hpp"
#include "featpool/source.hpp"

namespace featpool {

// numpy refuses headers longer than this unless told the file is trusted
// (numpy.lib.format._MAX_HEADER_SIZE); so does featpool, before reading them.
inline constexpr std::size_t kMaxNpyHeaderBytes = 10000;

struct npy_header {
  int major_version = 1;             // format version, 1, 2 or 3
  int minor_version = 0;             // always 0
  std::string descr;                 // 'descr' as written: "<f4", "|b1", "[('a', '<i4')]"
  bool fortran_order = false;        // 'fortran_order'
  std::vector<std::uint64_t> shape;  // 'shape'
  std::uint64_t data_offset = 0;     // magic, version, length field and header text
};

// Reads and checks the header, leaving `in` at the first data byte. `file`
// and `tensor` name the array in error messages.
npy_header read_npy_header(byte_stream& in, const std::string& file, const std::string& tensor);

// What the header announces, as a tensor_info. Checks that the stream holds
// the bytes the header promises when its size is known.
tensor_info describe_npy(const npy_header& header, std::string file, std::string name,
                         file_format format, std::optional<std::uint64_t> stream_size);

// Streams the data of `info` from `in`, positioned at the first data byte;
// `raw` says where that data lies in a file, when it can be read in place.
std::unique_ptr<block_reader> make_npy_reader(std::unique_ptr<byte_stream> in,
                                              const tensor_info& info,
                                              std::optional<raw_extent> raw = std::nullopt);

// An .npy file on disk. The tensor is named after the file's stem.
std::unique_ptr<tensor_source> open_npy_file(const std::string& path);
// The same for a file already open at offset 0 (read after sniffing it).
std::unique_ptr<tensor_source> open_npy_file(std::unique_ptr<fd_stream> opened,
                                             const std::string& path);

// An NPY stream (standard input or a FIFO) that can be read once.
std::unique_ptr<tensor_source> open_npy_stream(std::unique_ptr<byte_stream> in, std::string file,
                                               std::string name);

// Writes the NPY header numpy 1.14+ would write for this array (version 1.0,
// or 2.0 when the header needs it), padded so the data starts 64-aligned.
std::string npy_header_bytes(dtype type, const std::vector<std::uint64_t>& shape);

}  // namespace featpool
