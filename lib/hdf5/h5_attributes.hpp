#pragma once
// An HDF5 object's attributes as JSON, for `inspect --attrs` (and so that
// featpool's own provenance attributes can be read back).

#include "h5_handle.hpp"
#include <hdf5.h>
#include <nlohmann/json.hpp>

namespace featpool::detail {

// Attributes above this size are described, not read: attributes are meant
// to be small, and a listing must not load a file's bulk into memory.
inline constexpr std::uint64_t kMaxAttributeBytes = std::uint64_t{1} << 20;

// A JSON object mapping each attribute's name to its value: numbers (bool,
// integers, floats) and strings (fixed or variable length, invalid UTF-8
// replaced) as JSON values, arrays of them as nested arrays in the
// attribute's shape; an empty (null dataspace) attribute as null; anything
// else as a string description "dtype <numpy dtype>, shape <shape>".
nlohmann::json read_attributes(hid_t object, const h5_context& where);

}  // namespace featpool::detail
