#pragma once
// A heat-map grid drawn as text: in 24-bit ANSI colour with upper half
// blocks (each character cell holds two pixel rows, its top one in the
// foreground colour, its bottom one in the background colour), or without
// colour (NO_COLOR) as a ramp of ten ASCII characters framed by `|`, `-`
// and `+`.

#include <cstdint>
#include <span>
#include <string>

#include "featpool/colormap.hpp"
#include "featpool/heat_map.hpp"

namespace featpool {

// The ten characters of the ASCII ramp, from level 0 to level 255: level
// l is character l * 10 / 256. NaN is `?`; the frame's characters are none
// of these, so that tiles stand apart from it.
inline constexpr std::string_view kAsciiRamp = " .,:;ox%#@";

enum class terminal_colour { truecolour, none };

// The grid's text, each line ending in "\n". In colour, a character cell
// is a pixel wide and two pixel rows high, and each line ends by resetting
// the colours. In ASCII, a cell is one pixel of the grid with its tiles
// halved in height, since a cell is about twice as high as it is wide.
std::string terminal_image(const grid_geometry& grid, std::span<const std::uint16_t> levels,
                           colormap map, terminal_colour colour);

}  // namespace featpool
