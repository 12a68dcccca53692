#pragma once
// `featpool view`: one tensor's feature maps as a grid of heat maps, written
// as a PNG or drawn on the terminal.

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

#include "featpool/colormap.hpp"
#include "featpool/heat_map.hpp"
#include "featpool/layout.hpp"
#include "featpool/map_selection.hpp"

namespace featpool {

inline constexpr std::uint64_t kDefaultTile = 64;
inline constexpr std::uint64_t kMaxTile = 4096;
inline constexpr std::string_view kDefaultChannels = ":64";

struct view_options {
  std::string input;
  std::string output;      // a .png path, "-" for standard output, or empty
  bool term = false;       // draw on the terminal even when stdout is none
  map_request maps;        // --sample, --channels, --depth
  std::uint64_t cols = 0;  // 0: ceil(sqrt(tiles))
  std::uint64_t tile = kDefaultTile;
  colormap cmap = colormap::viridis;
  scale_mode scale = scale_mode::channel;
  std::optional<layout> axes;  // --layout; by rank without it
  bool force = false;
};

// Standard output as the terminal preview sees it.
struct view_terminal {
  bool is_terminal = false;  // stdout is one
  std::uint64_t columns = 80;
  bool colour = true;  // false with NO_COLOR
};

// The checks that need no file: where the image goes. Throws usage_error.
void check_view_destination(const view_options& options, const view_terminal& terminal);

// Draws the one tensor `options.input` resolves to; returns the exit code.
// Failures throw featpool::error, naming the file and tensor.
int run_view(const view_options& options, std::ostream& out, const view_terminal& terminal);

}  // namespace featpool
