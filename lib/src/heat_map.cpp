#include "featpool/heat_map.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "featpool/error.hpp"

namespace featpool {
namespace {

void level_group(std::span<const double> values, std::span<std::uint16_t> levels) {
  double lo = INFINITY;
  double hi = -INFINITY;
  for (double x : values) {
    if (std::isfinite(x)) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
  }
  bool spread = hi > lo;
  for (std::size_t i = 0; i < values.size(); ++i) {
    double x = values[i];
    if (std::isnan(x)) {
      levels[i] = kNanLevel;
    } else if (std::isinf(x)) {
      levels[i] = x > 0 ? 255 : 0;
    } else if (!spread) {
      levels[i] = 0;
    } else {
      // numpy's np.round(255 * ((x - lo) / (hi - lo))): the same operations
      // in the same order, so a numpy rebuild gets the same levels. The
      // clamp only matters when x - lo overflows, for ranges near DBL_MAX.
      double level = std::nearbyint(255 * ((x - lo) / (hi - lo)));
      levels[i] = level >= 0 && level <= 255 ? static_cast<std::uint16_t>(level) : 0;
    }
  }
}

std::uint64_t ceil_sqrt(std::uint64_t n) {
  auto root = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(n)));
  while (root * root < n) ++root;
  while (root > 0 && (root - 1) * (root - 1) >= n) --root;
  return root;
}

}  // namespace

scale_mode parse_scale_mode(std::string_view text) {
  if (text == "channel") return scale_mode::channel;
  if (text == "global") return scale_mode::global;
  throw usage_error(fmt::format("--scale: '{}': expected channel or global", text));
}

std::vector<std::uint16_t> value_levels(std::span<const double> values, std::uint64_t map_size,
                                        scale_mode scale) {
  std::vector<std::uint16_t> levels(values.size());
  std::uint64_t group = scale == scale_mode::global ? values.size() : map_size;
  for (std::uint64_t begin = 0; begin < values.size(); begin += group) {
    auto count = std::min<std::uint64_t>(group, values.size() - begin);
    level_group(values.subspan(begin, count), std::span(levels).subspan(begin, count));
  }
  return levels;
}

grid_geometry upscaled_grid(std::uint64_t tiles, std::uint64_t map_height, std::uint64_t map_width,
                            std::uint64_t cols, std::uint64_t tile) {
  grid_geometry grid;
  grid.tiles = tiles;
  grid.cols = cols ? cols : std::max<std::uint64_t>(1, ceil_sqrt(tiles));
  grid.rows = std::max<std::uint64_t>(1, (tiles + grid.cols - 1) / grid.cols);
  grid.map_height = map_height;
  grid.map_width = map_width;
  std::uint64_t k = std::max<std::uint64_t>(1, tile / std::max(map_height, map_width));
  grid.tile_height = k * map_height;
  grid.tile_width = k * map_width;
  return grid;
}

grid_geometry fitted_grid(const grid_geometry& grid, std::uint64_t max_width) {
  if (grid.width() <= max_width) return grid;
  grid_geometry fitted = grid;
  std::uint64_t per_tile = max_width > 1 ? (max_width - 1) / grid.cols : 0;
  fitted.tile_width = std::max<std::uint64_t>(1, per_tile > 1 ? per_tile - 1 : 1);
  fitted.tile_height = std::max<std::uint64_t>(
      1, (grid.tile_height * fitted.tile_width + grid.tile_width / 2) / grid.tile_width);
  return fitted;
}

void grid_row(const grid_geometry& grid, std::span<const std::uint16_t> levels, std::uint64_t y,
              std::span<std::uint16_t> row) {
  std::fill(row.begin(), row.end(), kBackgroundLevel);
  if (is_gap(y, grid.tile_height)) return;
  std::uint64_t tile_row = (y - 1) / (grid.tile_height + 1);
  std::uint64_t within = (y - 1) % (grid.tile_height + 1);
  if (tile_row >= grid.rows) return;
  std::uint64_t map_y = within * grid.map_height / grid.tile_height;
  std::uint64_t map_size = grid.map_height * grid.map_width;
  for (std::uint64_t col = 0; col < grid.cols; ++col) {
    std::uint64_t tile = tile_row * grid.cols + col;
    if (tile >= grid.tiles) break;
    const std::uint16_t* map_row = levels.data() + tile * map_size + map_y * grid.map_width;
    std::uint16_t* out = row.data() + 1 + col * (grid.tile_width + 1);
    for (std::uint64_t x = 0; x < grid.tile_width; ++x) {
      out[x] = map_row[x * grid.map_width / grid.tile_width];
    }
  }
}

}  // namespace featpool
