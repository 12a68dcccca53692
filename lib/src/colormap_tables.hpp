#pragma once
// matplotlib's float tables of viridis and magma (colormap_tables.cpp).

#include <array>

namespace featpool {

using float_table = std::array<std::array<double, 3>, 256>;

extern const float_table kViridisTable;
extern const float_table kMagmaTable;

}  // namespace featpool
