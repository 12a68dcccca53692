#pragma once
// Heat-map grids, before colour: every map value becomes a level (an index
// into a 256-entry colour table, or NaN), and the grid lays the maps out as
// tiles with one-pixel gaps, row by row.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "featpool/colormap.hpp"

namespace featpool {

// Levels 0..255 index the colour table; the two others are drawn in fixed
// colours.
inline constexpr std::uint16_t kNanLevel = 256;
inline constexpr std::uint16_t kBackgroundLevel = 257;

// Pixels that are no value: gaps and frame, and NaN, which no colour map
// holds, so that it stands out.
inline constexpr rgb kBackgroundColour{32, 32, 32};
inline constexpr rgb kNanColour{255, 0, 255};

// The colour a level is drawn in.
inline rgb level_colour(std::uint16_t level, const colour_table& table) {
  if (level == kBackgroundLevel) return kBackgroundColour;
  if (level == kNanLevel) return kNanColour;
  return table[level];
}

enum class scale_mode {
  channel,  // each map normalized by its own finite min and max
  global,   // all maps by the min and max over them all
};

// Parses a --scale value. Throws usage_error.
scale_mode parse_scale_mode(std::string_view text);

// The level of every value of `values` (maps of `map_size` values each):
// v = (x - lo) / (hi - lo) over the finite min lo and max hi, then
// round(255 v), ties to even, as numpy rounds. When hi == lo (or no value
// is finite) every finite value is level 0. +Inf is 255, -Inf 0, NaN
// kNanLevel.
std::vector<std::uint16_t> value_levels(std::span<const double> values, std::uint64_t map_size,
                                        scale_mode scale);

// Where the tiles lie: `cols` columns and `rows` rows of tiles of
// tile_width × tile_height pixels, separated and framed by one-pixel gaps.
struct grid_geometry {
  std::uint64_t tiles = 0;
  std::uint64_t cols = 1;
  std::uint64_t rows = 1;
  std::uint64_t map_height = 1;
  std::uint64_t map_width = 1;
  std::uint64_t tile_height = 1;
  std::uint64_t tile_width = 1;

  std::uint64_t width() const { return cols * (tile_width + 1) + 1; }
  std::uint64_t height() const { return rows * (tile_height + 1) + 1; }
};

// The PNG's geometry: each map upscaled by k = max(1, tile / max(H, W))
// (integer division), in `cols` columns (0: ceil(sqrt(tiles))).
grid_geometry upscaled_grid(std::uint64_t tiles, std::uint64_t map_height, std::uint64_t map_width,
                            std::uint64_t cols, std::uint64_t tile);

// The same grid with tiles shrunk, keeping their aspect, so that the whole
// is at most `max_width` pixels wide where it can be (a tile is at least
// one pixel). A grid that fits already is returned as it is.
grid_geometry fitted_grid(const grid_geometry& grid, std::uint64_t max_width);

// Whether pixel row (or column) `position` of a grid is a gap between tiles
// or the frame, given the tiles' height (or width).
inline bool is_gap(std::uint64_t position, std::uint64_t tile_side) {
  return position == 0 || (position - 1) % (tile_side + 1) == tile_side;
}

// Fills `row` (grid.width() levels) with pixel row y of the grid: each tile
// pixel shows the map value under it, nearest neighbour; gaps and empty
// slots are kBackgroundLevel.
void grid_row(const grid_geometry& grid, std::span<const std::uint16_t> levels, std::uint64_t y,
              std::span<std::uint16_t> row);

}  // namespace featpool
