#pragma once
// Text from HDF5 files as featpool shows it. Names and strings in a file are
// bytes, usually UTF-8 but never checked by HDF5; JSON output needs valid
// UTF-8, and compound dtype descriptions quote field names as Python does.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace featpool::detail {

// The text with every byte sequence that is not valid UTF-8 replaced by
// U+FFFD, so it can go into JSON.
std::string valid_utf8(std::string_view bytes);

// Python's repr() of a str: 'name', or "it's" when it holds a single quote.
std::string python_repr(std::string_view text);

// Python's repr() of a shape tuple: (), (3,), (2, 3).
std::string python_shape(const std::vector<std::uint64_t>& shape);

}  // namespace featpool::detail
