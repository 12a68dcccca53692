#pragma once
// Aligned text columns, as the inspect listing and the pool report print
// them: every column padded to its widest cell plus two spaces, the last
// one not padded, widths counted in characters of UTF-8 text (the report's
// arrows are one column, three bytes). No line ends in padding, but a cell's
// own spaces are kept.

#include <string>
#include <vector>

namespace featpool {

// One line per row, without the newline.
std::vector<std::string> aligned_lines(const std::vector<std::vector<std::string>>& rows);

}  // namespace featpool
