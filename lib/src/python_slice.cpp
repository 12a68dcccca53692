#include "featpool/python_slice.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "featpool/error.hpp"

namespace featpool {
namespace {

// An integer, saturated to 64 bits: Python's integers have no bounds, and on
// an axis of fewer than 2^63 positions a saturated bound, step or index
// selects what the exact one would.
std::optional<std::int64_t> whole_number(std::string_view text) {
  std::int64_t value = 0;
  auto [end, failure] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || end != text.data() + text.size()) return std::nullopt;
  if (failure == std::errc::result_out_of_range) {
    return text.front() == '-' ? INT64_MIN : INT64_MAX;
  }
  if (failure != std::errc{}) return std::nullopt;
  return value;
}

}  // namespace

std::int64_t parse_index(std::string_view flag, std::string_view text) {
  auto value = whole_number(text);
  if (!value) throw usage_error(fmt::format("{}: '{}': expected a whole number", flag, text));
  return *value;
}

python_slice parse_python_slice(std::string_view flag, std::string_view text) {
  auto fail = [&](std::string_view reason) {
    return usage_error(fmt::format("{}: '{}': {}", flag, text, reason));
  };
  python_slice result;
  result.text = std::string(text);
  std::vector<std::string_view> parts;
  for (std::size_t begin = 0;;) {
    std::size_t colon = text.find(':', begin);
    parts.push_back(text.substr(begin, colon == std::string_view::npos ? colon : colon - begin));
    if (colon == std::string_view::npos) break;
    begin = colon + 1;
  }
  if (parts.size() > 3) throw fail("expected A:B, A:B:STEP or one index, as Python slices");
  std::optional<std::int64_t>* fields[] = {&result.start, &result.stop, &result.step};
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].empty() && parts.size() > 1) continue;
    auto value = whole_number(parts[i]);
    if (!value) throw fail("expected A:B, A:B:STEP or one index, as Python slices");
    *fields[i] = value;
  }
  result.single_index = parts.size() == 1;
  if (result.step == 0) throw fail("the step cannot be 0");
  return result;
}

std::optional<std::uint64_t> index_position(std::int64_t index, std::uint64_t length) {
  auto signed_length = static_cast<std::int64_t>(std::min<std::uint64_t>(length, INT64_MAX));
  if (index < -signed_length || index >= signed_length) return std::nullopt;
  return static_cast<std::uint64_t>(index < 0 ? index + signed_length : index);
}

std::vector<std::uint64_t> slice_positions(const python_slice& slice, std::uint64_t length) {
  if (slice.single_index) {
    auto position = index_position(*slice.start, length);
    if (!position) return {};
    return {*position};
  }
  // CPython's PySlice_AdjustIndices, in 64 bits.
  auto n = static_cast<std::int64_t>(std::min<std::uint64_t>(length, INT64_MAX));
  std::int64_t step = slice.step.value_or(1);
  auto adjust = [&](std::optional<std::int64_t> bound, std::int64_t fallback) {
    if (!bound) return fallback;
    std::int64_t value = *bound;
    if (value < 0) {
      value = value < -n ? (step < 0 ? -1 : 0) : value + n;
    } else if (value >= n) {
      value = step < 0 ? n - 1 : n;
    }
    return value;
  };
  std::int64_t start = adjust(slice.start, step < 0 ? n - 1 : 0);
  std::int64_t stop = adjust(slice.stop, step < 0 ? -1 : n);
  std::vector<std::uint64_t> positions;
  for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    positions.push_back(static_cast<std::uint64_t>(i));
    if (step > 0 ? i > INT64_MAX - step : i < INT64_MIN - step) break;
  }
  return positions;
}

}  // namespace featpool
