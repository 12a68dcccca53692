#pragma once
// The colour maps `featpool view` draws with: gray, and matplotlib's
// viridis and magma, each as 256 8-bit RGB colours from the lowest value to
// the highest.

#include <array>
#include <cstdint>
#include <string_view>

namespace featpool {

enum class colormap { gray, viridis, magma };

// Parses a --cmap value. Throws usage_error.
colormap parse_colormap(std::string_view name);

struct rgb {
  std::uint8_t r = 0;
  std::uint8_t g = 0;
  std::uint8_t b = 0;
  bool operator==(const rgb&) const = default;
};

using colour_table = std::array<rgb, 256>;

// gray: entry i is (i, i, i). viridis and magma: matplotlib's published
// float tables in bytes as matplotlib makes them (`cmap(i, bytes=True)`,
// which truncates 255 times the float), so that featpool's pixels are the
// ones matplotlib's own images have.
const colour_table& colours_of(colormap map);

}  // namespace featpool
