// The checks of a safetensors header, every one made before any data is
// read: the same the format's own loader makes (a JSON object of tensors,
// each with a known dtype, a shape and a byte range as long as the two
// make it, inside the data, no two overlapping) plus featpool's own
// limits (numpy's 32 dimensions, names that print on one line).

#include <algorithm>
#include <array>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "featpool/error.hpp"
#include "featpool/safetensors.hpp"

namespace featpool {
namespace {

struct dtype_row {
  std::string_view name;
  std::optional<dtype> type;
  std::size_t bits;
};

// Every dtype the format defines. Those featpool cannot pool (8-bit and
// smaller floats, complex) are listed as non-numeric tensors, as NPY's
// complex ones are.
constexpr std::array kDtypes{
    dtype_row{"BOOL", dtype::bool_, 8},     dtype_row{"U8", dtype::uint8, 8},
    dtype_row{"I8", dtype::int8, 8},        dtype_row{"U16", dtype::uint16, 16},
    dtype_row{"I16", dtype::int16, 16},     dtype_row{"U32", dtype::uint32, 32},
    dtype_row{"I32", dtype::int32, 32},     dtype_row{"U64", dtype::uint64, 64},
    dtype_row{"I64", dtype::int64, 64},     dtype_row{"F16", dtype::float16, 16},
    dtype_row{"BF16", dtype::bfloat16, 16}, dtype_row{"F32", dtype::float32, 32},
    dtype_row{"F64", dtype::float64, 64},   dtype_row{"F8_E5M2", std::nullopt, 8},
    dtype_row{"F8_E4M3", std::nullopt, 8},  dtype_row{"F8_E8M0", std::nullopt, 8},
    dtype_row{"F6_E2M3", std::nullopt, 6},  dtype_row{"F6_E3M2", std::nullopt, 6},
    dtype_row{"F4", std::nullopt, 4},       dtype_row{"C64", std::nullopt, 64},
};

const dtype_row* find_dtype(std::string_view name) {
  auto found = std::find_if(kDtypes.begin(), kDtypes.end(),
                            [&](const dtype_row& row) { return row.name == name; });
  return found == kDtypes.end() ? nullptr : &*found;
}

// A tensor's entry: {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}.
safetensors_entry read_entry(const std::string& name, const nlohmann::json& value,
                             const std::string& file) {
  auto fail = [&](std::string reason) { return error(file, name, std::move(reason)); };
  if (!value.is_object()) throw fail("malformed header: the entry is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(key)) throw fail(fmt::format("malformed header: no '{}'", key));
  }
  safetensors_entry entry;
  entry.name = name;
  const auto& type = value["dtype"];
  if (!type.is_string()) throw fail("malformed header: 'dtype' is not a string");
  entry.dtype_name = type.get<std::string>();
  const dtype_row* row = find_dtype(entry.dtype_name);
  if (row == nullptr) {
    throw fail(fmt::format("unknown dtype {}",
                           type.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace)));
  }
  const auto& shape = value["shape"];
  if (!shape.is_array()) throw fail("malformed header: 'shape' is not a list");
  if (shape.size() > kMaxRank) {
    throw fail(fmt::format("shape has {} dimensions, more than the {} numpy allows", shape.size(),
                           kMaxRank));
  }
  std::uint64_t elements = 1;
  for (const auto& extent : shape) {
    if (!extent.is_number_unsigned()) {
      throw fail("malformed header: 'shape' holds something other than a non-negative integer");
    }
    entry.shape.push_back(extent.get<std::uint64_t>());
    if (__builtin_mul_overflow(elements, entry.shape.back(), &elements)) {
      throw fail("shape is too large: its size overflows 64 bits");
    }
  }
  const auto& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    throw fail("malformed header: 'data_offsets' is not two non-negative integers");
  }
  entry.begin = offsets[0].get<std::uint64_t>();
  entry.end = offsets[1].get<std::uint64_t>();
  if (entry.end < entry.begin) {
    throw fail(fmt::format("data_offsets [{}, {}] end before they begin", entry.begin, entry.end));
  }
  std::uint64_t bits = 0;
  if (__builtin_mul_overflow(elements, row->bits, &bits)) {
    throw fail("shape is too large: its size overflows 64 bits");
  }
  if (bits % 8 != 0) {
    throw fail(fmt::format("{} elements of {} do not fill whole bytes", elements, row->name));
  }
  if (entry.end - entry.begin != bits / 8) {
    throw fail(fmt::format("data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {}",
                           entry.begin, entry.end, entry.end - entry.begin,
                           nlohmann::json(entry.shape).dump(), row->name, bits / 8));
  }
  return entry;
}

// __metadata__: strings by name, as the format defines it.
nlohmann::json read_metadata(const nlohmann::json& value, const std::string& file) {
  bool strings = value.is_object() && std::all_of(value.begin(), value.end(),
                                                  [](const auto& v) { return v.is_string(); });
  if (!strings) throw error(file, "malformed header: __metadata__ is not strings by name");
  return value;
}

// Refuses two tensors whose byte ranges share a byte, and ranges past the
// data's end.
void check_ranges(std::vector<safetensors_entry> entries, std::uint64_t data_bytes,
                  const std::string& file) {
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const safetensors_entry* previous = nullptr;
  for (const auto& entry : entries) {
    if (entry.end > data_bytes) {
      throw error(file, entry.name,
                  fmt::format("data_offsets [{}, {}] run past the end of the data ({} bytes)",
                              entry.begin, entry.end, data_bytes));
    }
    // Empty tensors take no bytes, so they overlap nothing.
    if (entry.begin == entry.end) continue;
    if (previous != nullptr && entry.begin < previous->end) {
      throw error(file, entry.name,
                  fmt::format("data_offsets [{}, {}] overlap those of '{}', [{}, {}]", entry.begin,
                              entry.end, previous->name, previous->begin, previous->end));
    }
    previous = &entry;
  }
}

// A header is an object of objects of scalars and lists of numbers: deeper
// nesting is refused while parsing, before it can take memory.
constexpr int kMaxHeaderDepth = 3;

}  // namespace

std::string provenance_key(std::string_view tensor_name) {
  return "featpool:" + std::string(tensor_name);
}

safetensors_dtype safetensors_dtype_of(std::string_view name) {
  const dtype_row* row = find_dtype(name);
  if (row == nullptr) return {};
  return {row->type, row->bits / 8};
}

std::string_view safetensors_dtype_name(dtype type) {
  for (const auto& row : kDtypes) {
    if (row.type == type) return row.name;
  }
  return "?";
}

safetensors_header parse_safetensors_header(std::string_view text, std::uint64_t data_bytes,
                                            const std::string& file) {
  if (text.empty() || text.front() != '{') {
    throw error(file, "malformed header: it does not begin with '{'");
  }
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(text, [](int depth, nlohmann::json::parse_event_t, auto&) {
      if (depth > kMaxHeaderDepth) throw std::length_error("nested too deep");
      return true;
    });
  } catch (const nlohmann::json::parse_error& failure) {
    throw error(file, fmt::format("malformed header: not valid JSON (at byte {})", failure.byte));
  } catch (const std::length_error&) {
    throw error(file, "malformed header: nested deeper than a safetensors header is");
  }
  if (!parsed.is_object()) throw error(file, "malformed header: not a JSON object");
  safetensors_header header;
  for (const auto& [name, value] : parsed.items()) {
    if (name == "__metadata__") {
      header.metadata = read_metadata(value, file);
      continue;
    }
    if (name.empty()) throw error(file, "a tensor has an empty name");
    if (has_control_character(name)) {
      throw error(file, fmt::format("tensor name {:?} contains a control character", name));
    }
    header.entries.push_back(read_entry(name, value, file));
  }
  check_ranges(header.entries, data_bytes, file);
  return header;
}

}  // namespace featpool
