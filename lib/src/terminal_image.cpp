#include "featpool/terminal_image.hpp"

#include <optional>
#include <vector>

#include <fmt/format.h>

namespace featpool {
namespace {

constexpr std::string_view kUpperHalfBlock = "\u2580";
constexpr std::string_view kReset = "\x1b[0m";

// One text line of two pixel rows in colour; the colours are set only when
// they change from the cell before.
void colour_line(std::string& out, std::span<const std::uint16_t> top,
                 std::span<const std::uint16_t> bottom, bool has_bottom,
                 const colour_table& table) {
  std::optional<rgb> foreground;
  std::optional<rgb> background;
  for (std::size_t x = 0; x < top.size(); ++x) {
    rgb upper = level_colour(top[x], table);
    if (upper != foreground) {
      fmt::format_to(std::back_inserter(out), "\x1b[38;2;{};{};{}m", upper.r, upper.g, upper.b);
      foreground = upper;
    }
    if (has_bottom) {
      rgb lower = level_colour(bottom[x], table);
      if (lower != background) {
        fmt::format_to(std::back_inserter(out), "\x1b[48;2;{};{};{}m", lower.r, lower.g, lower.b);
        background = lower;
      }
    }
    out += kUpperHalfBlock;
  }
  out += kReset;
  out += '\n';
}

std::string colour_image(const grid_geometry& grid, std::span<const std::uint16_t> levels,
                         colormap map) {
  const auto& table = colours_of(map);
  std::vector<std::uint16_t> top(grid.width());
  std::vector<std::uint16_t> bottom(grid.width());
  std::string out;
  for (std::uint64_t y = 0; y < grid.height(); y += 2) {
    grid_row(grid, levels, y, top);
    bool has_bottom = y + 1 < grid.height();
    if (has_bottom) grid_row(grid, levels, y + 1, bottom);
    colour_line(out, top, bottom, has_bottom, table);
  }
  return out;
}

std::string ascii_image(const grid_geometry& grid, std::span<const std::uint16_t> levels) {
  grid_geometry halved = grid;
  halved.tile_height = std::max<std::uint64_t>(1, (grid.tile_height + 1) / 2);
  std::vector<std::uint16_t> row(halved.width());
  std::string out;
  for (std::uint64_t y = 0; y < halved.height(); ++y) {
    grid_row(halved, levels, y, row);
    bool gap_row = is_gap(y, halved.tile_height);
    for (std::uint64_t x = 0; x < row.size(); ++x) {
      std::uint16_t level = row[x];
      bool gap_column = is_gap(x, halved.tile_width);
      if (gap_row) {
        out += gap_column ? '+' : '-';
      } else if (gap_column) {
        out += '|';
      } else if (level == kBackgroundLevel) {
        out += ' ';  // a slot past the last tile
      } else if (level == kNanLevel) {
        out += '?';
      } else {
        out += kAsciiRamp[level * kAsciiRamp.size() / 256];
      }
    }
    out += '\n';
  }
  return out;
}

}  // namespace

std::string terminal_image(const grid_geometry& grid, std::span<const std::uint16_t> levels,
                           colormap map, terminal_colour colour) {
  return colour == terminal_colour::truecolour ? colour_image(grid, levels, map)
                                               : ascii_image(grid, levels);
}

}  // namespace featpool
