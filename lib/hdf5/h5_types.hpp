#pragma once
// HDF5 datatypes in numpy's terms, as h5py presents them: the dtype name a
// user sees in h5py for a dataset, whether featpool can pool it, and the
// in-memory type its elements are read as.

#include <cstdint>
#include <optional>
#include <string>

#include "h5_handle.hpp"
#include <hdf5.h>

#include "featpool/dtype.hpp"

namespace featpool::detail {

struct h5_type_description {
  std::optional<dtype> type;  // set only for numeric (poolable) types
  std::string name;           // str(dtype) in h5py, with numpy names for numbers
  byte_order order = byte_order::none;
  std::uint64_t item_size = 0;  // numpy's itemsize, which counts nbytes
};

// Describes a dataset's or attribute's datatype:
//  - integers of 1, 2, 4 or 8 bytes, floats of 2, 4 or 8 bytes and bitfields
//    (read as unsigned integers, as h5py does) are numeric;
//  - an enum with exactly the members FALSE = 0 and TRUE = 1 is h5py's bool;
//    any other enum is its base integer type, numeric;
//  - a compound of two equal floats named "r" and "i" is h5py's complex
//    ("complex64", "complex128"), listed but not numeric;
//  - fixed-length strings are "|S<n>", variable-length strings, references
//    and variable-length sequences "object", opaque data "|V<n>" (or the
//    numpy dtype an h5py "NUMPY:" tag records), array types numpy's subarray
//    string, other compounds numpy's str() of their structured dtype;
//  - anything numpy has no name for (3-byte integers, time types) is "|V<n>".
h5_type_description describe_h5_type(hid_t type_id, const h5_context& where);

// The in-memory type numeric data of `file_type` is read as: `type`'s size,
// native byte order. Floats and integers convert through HDF5; float16 is an
// IEEE half in native order (the raw bits come through unchanged); bool is
// h5py's own enum over a native int8; bitfields keep their layout in native
// order.
h5_handle memory_type_for(hid_t file_type, dtype type, const h5_context& where);

// HDF5's native integer type for an integer dtype (not an owned handle).
hid_t native_integer(dtype type);

// Whether the stored bytes of `file_type` are already elements of
// `memory_type` (see memory_type_for) but for their byte order: a plain
// integer or float type of the same size and bit layout, not an enum, a
// bitfield or bool. nullopt when HDF5 has to convert the data; otherwise
// whether the bytes are stored in the other order.
std::optional<bool> stored_swapped(hid_t file_type, hid_t memory_type, const h5_context& where);

}  // namespace featpool::detail
