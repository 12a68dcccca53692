#include "featpool/text_table.hpp"

#include <algorithm>

namespace featpool {
namespace {

std::size_t columns(const std::string& text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (c & 0xc0) != 0x80; }));
}

}  // namespace

std::vector<std::string> aligned_lines(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], columns(row[i]));
  }
  std::vector<std::string> lines;
  for (const auto& row : rows) {
    std::string line;
    std::size_t text_end = 0;  // past the last non-empty cell: the padding after it is dropped
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (!row[i].empty()) text_end = line.size();
      if (i + 1 < row.size()) line.append(widths[i] - columns(row[i]) + 2, ' ');
    }
    // A cell's own trailing spaces stay: inspect's histogram draws empty bins as spaces.
    line.resize(text_end);
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace featpool
