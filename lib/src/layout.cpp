#include "featpool/layout.hpp"

#include <cctype>
#include <charconv>

#include <fmt/format.h>

#include "featpool/error.hpp"

namespace featpool {

layout parse_layout(std::string_view spec) {
  auto fail = [&](std::string_view reason) {
    return usage_error(fmt::format("--layout: '{}': {}", spec, reason));
  };
  if (spec.empty()) throw fail("a layout needs at least one axis letter");
  layout result;
  for (char c : spec) {
    if (!std::isalpha(static_cast<unsigned char>(c))) throw fail("a layout is letters only");
    char letter = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (result.letters.find(letter) != std::string::npos) {
      throw fail(fmt::format("the letter {} is repeated", letter));
    }
    std::size_t axis = result.letters.size();
    result.letters += letter;
    if (letter == 'N') {
      result.batch_axis = axis;
    } else if (letter == 'C') {
      result.channel_axis = axis;
    } else {
      result.spatial_axes.push_back(axis);
    }
  }
  if (result.spatial_axes.empty()) {
    throw fail("a layout needs a spatial axis (a letter other than N and C)");
  }
  return result;
}

std::optional<layout> default_layout(std::size_t rank) {
  switch (rank) {
    case 3:
      return parse_layout("NCL");
    case 4:
      return parse_layout("NCHW");
    case 5:
      return parse_layout("NCDHW");
    default:
      return std::nullopt;
  }
}

size_spec parse_size(std::string_view text) {
  auto fail = [&](std::string_view reason) {
    return usage_error(fmt::format("--size: '{}': {}", text, reason));
  };
  size_spec result;
  result.text = std::string(text);
  std::size_t begin = 0;
  for (;;) {
    std::size_t end = text.find('x', begin);
    std::string_view part =
        text.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin);
    if (part == "_") {
      result.sizes.emplace_back(std::nullopt);
    } else {
      std::uint64_t value = 0;
      auto [stop, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
      if (part.empty() || ec == std::errc::invalid_argument || stop != part.data() + part.size()) {
        throw fail("expected sizes like 7, 7x7 or 3x5, with _ to keep an axis");
      }
      if (ec == std::errc::result_out_of_range) throw fail("a size is too large");
      if (value == 0) throw fail("sizes must be at least 1");
      result.sizes.emplace_back(value);
    }
    if (end == std::string_view::npos) break;
    begin = end + 1;
  }
  return result;
}

std::vector<size_spec> parse_size_levels(std::string_view text) {
  std::vector<size_spec> levels;
  std::size_t begin = 0;
  for (;;) {
    std::size_t end = text.find(',', begin);
    auto level = text.substr(begin, end == std::string_view::npos ? end : end - begin);
    if (level.empty()) {
      throw usage_error(
          fmt::format("--size: '{}': expected sizes like 7, 7x7 or 1,2,4 (a "
                      "pyramid), with no empty level",
                      text));
    }
    levels.push_back(parse_size(level));
    if (end == std::string_view::npos) return levels;
    begin = end + 1;
  }
}

std::string size_levels_text(const std::vector<size_spec>& levels) {
  std::string text;
  for (const auto& level : levels) text += (text.empty() ? "" : ",") + level.text;
  return text;
}

std::optional<std::vector<std::uint64_t>> resolve_size(const size_spec& size,
                                                       const std::vector<std::uint64_t>& lengths,
                                                       std::string& reason) {
  if (size.sizes.size() != 1 && size.sizes.size() != lengths.size()) {
    reason = fmt::format("--size {} gives {} sizes for {} spatial axes", size.text,
                         size.sizes.size(), lengths.size());
    return std::nullopt;
  }
  std::vector<std::uint64_t> out;
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    const auto& wanted = size.sizes.size() == 1 ? size.sizes[0] : size.sizes[i];
    out.push_back(wanted.value_or(lengths[i]));
  }
  return out;
}

}  // namespace featpool
