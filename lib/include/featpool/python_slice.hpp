#pragma once
// Python's slices and indices (`2:10`, `-8:`, `::2`, `5`) over one axis, as
// `featpool view --channels` takes them: what a numpy user would type
// between the brackets of `x[:, 2:10]`.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace featpool {

struct python_slice {
  std::optional<std::int64_t> start;
  std::optional<std::int64_t> stop;
  std::optional<std::int64_t> step;
  bool single_index = false;  // `5`: start alone, no colon
  std::string text;           // as given, for messages
};

// Parses `A:B`, `A:B:S` (each part optional, negatives allowed) or `N`.
// Throws usage_error for anything else and for a step of 0, as Python
// refuses one.
python_slice parse_python_slice(std::string_view flag, std::string_view text);

// The positions `slice` selects on an axis of `length`, in the slice's
// order: bounds clamped as Python's slice.indices clamps them, so the
// result may be empty. A single index out of range selects nothing too:
// index_position tells the two cases apart.
std::vector<std::uint64_t> slice_positions(const python_slice& slice, std::uint64_t length);

// A numpy-style index (negative counts from the end) as a position, or
// nullopt when it is outside an axis of `length`.
std::optional<std::uint64_t> index_position(std::int64_t index, std::uint64_t length);

// Parses a whole integer, sign allowed, for index flags (`--sample -1`).
// Throws usage_error naming `flag`.
std::int64_t parse_index(std::string_view flag, std::string_view text);

}  // namespace featpool
