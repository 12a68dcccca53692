#pragma once
// Axis layouts (`--layout NCHW`) and output sizes (`--size 7x7`): their
// syntax, the defaults by rank, and how a tensor's shape maps onto them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace featpool {

struct layout {
  std::string letters;                      // one letter per axis, e.g. "NHWC"
  std::optional<std::size_t> batch_axis;    // the position of N
  std::optional<std::size_t> channel_axis;  // the position of C
  std::vector<std::size_t> spatial_axes;    // every other position, in order

  std::size_t rank() const noexcept { return letters.size(); }
};

// Parses a --layout value: letters only (case does not matter), none
// repeated, at least one spatial letter. Throws usage_error.
layout parse_layout(std::string_view spec);

// PyTorch's conventions by rank: 3 → NCL, 4 → NCHW, 5 → NCDHW; nullopt for
// any other rank.
std::optional<layout> default_layout(std::size_t rank);

// A parsed --size: one entry per spatial axis, or one for all of them;
// nullopt entries (`_`) keep that axis's length, as PyTorch's None does.
struct size_spec {
  std::vector<std::optional<std::uint64_t>> sizes;
  std::string text;  // as given, for reports and attributes
};

// Parses a --size value: `1`, `7`, `7x7`, `3x5`, `2x2x2`, `_x7`. Throws
// usage_error for anything else or for a size of 0.
size_spec parse_size(std::string_view text);

// Parses a --size value that may be a spatial pyramid: sizes separated by
// commas (`1,2,4`, `1,3x5`), each one as parse_size takes it. Throws
// usage_error.
std::vector<size_spec> parse_size_levels(std::string_view text);

// The levels as --size takes them, for reports and attributes: "1,2,4".
std::string size_levels_text(const std::vector<size_spec>& levels);

// The output length of each spatial axis for the given input lengths, or a
// reason the sizes do not fit them (a count mismatch).
std::optional<std::vector<std::uint64_t>> resolve_size(const size_spec& size,
                                                       const std::vector<std::uint64_t>& lengths,
                                                       std::string& reason);

}  // namespace featpool
