#pragma once
// safetensors, as the format's own library writes it: an 8-byte
// little-endian header length, a JSON header naming every tensor's dtype,
// shape and byte range, then the data, little-endian and in C order.
// Every byte range is checked against the header and the file before any
// data is read; tensors are then read in place, like NPY data.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "featpool/source.hpp"

namespace featpool {

// The format's own loader refuses longer headers; so does featpool, before
// reading one.
inline constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// One tensor of a safetensors header.
struct safetensors_entry {
  std::string name;
  std::string dtype_name;  // the format's: "F32", "BF16", …
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0;  // data_offsets, from the first data byte
  std::uint64_t end = 0;
};

struct safetensors_header {
  std::vector<safetensors_entry> entries;  // by name, as the format's loader lists them
  nlohmann::json metadata;                 // __metadata__: strings by name, or null
  std::uint64_t data_offset = 0;           // where the data starts in the file
};

// Checks the header `text` (the JSON after the length field) of a file
// whose data part holds `data_bytes` bytes: every entry well formed, its
// dtype known, its range as long as its shape and dtype make it, inside
// the data and apart from every other. Throws featpool::error naming
// `file` and, where one is at fault, the tensor.
safetensors_header parse_safetensors_header(std::string_view text, std::uint64_t data_bytes,
                                            const std::string& file);

// The dtype featpool pools a safetensors dtype as, if any, and its size in
// bytes (0 for a name the format does not define).
struct safetensors_dtype {
  std::optional<dtype> type;
  std::size_t size = 0;
};
safetensors_dtype safetensors_dtype_of(std::string_view name);

// The format's name for a dtype featpool writes.
std::string_view safetensors_dtype_name(dtype type);

// The __metadata__ key of a tensor's provenance in featpool's outputs:
// "featpool:" and its name. A reader shows such a key only with its tensor.
std::string provenance_key(std::string_view tensor_name);

// Opens a .safetensors file and lists its tensors by name.
std::unique_ptr<tensor_source> open_safetensors_file(const std::string& path);

}  // namespace featpool
