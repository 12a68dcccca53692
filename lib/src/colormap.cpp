#include "featpool/colormap.hpp"

#include "colormap_tables.hpp"
#include <fmt/format.h>

#include "featpool/error.hpp"

namespace featpool {
namespace {

colour_table gray_table() {
  colour_table table;
  for (std::size_t i = 0; i < table.size(); ++i) {
    auto level = static_cast<std::uint8_t>(i);
    table[i] = {level, level, level};
  }
  return table;
}

// matplotlib's `(lut * 255).astype(np.uint8)`: truncation, not rounding.
colour_table in_bytes(const float_table& floats) {
  colour_table table;
  auto byte = [](double channel) { return static_cast<std::uint8_t>(channel * 255); };
  for (std::size_t i = 0; i < table.size(); ++i) {
    table[i] = {byte(floats[i][0]), byte(floats[i][1]), byte(floats[i][2])};
  }
  return table;
}

}  // namespace

colormap parse_colormap(std::string_view name) {
  if (name == "gray") return colormap::gray;
  if (name == "viridis") return colormap::viridis;
  if (name == "magma") return colormap::magma;
  throw usage_error(fmt::format("--cmap: '{}': expected gray, viridis or magma", name));
}

const colour_table& colours_of(colormap map) {
  static const colour_table gray = gray_table();
  static const colour_table viridis = in_bytes(kViridisTable);
  static const colour_table magma = in_bytes(kMagmaTable);
  switch (map) {
    case colormap::gray:
      return gray;
    case colormap::viridis:
      return viridis;
    case colormap::magma:
      return magma;
  }
  return gray;
}

}  // namespace featpool
