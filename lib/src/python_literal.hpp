#pragma once
// A parser for the small subset of Python literals an NPY header is written
// in: dicts, tuples, lists, strings, integers, True, False and None. numpy
// reads the header with ast.literal_eval; this accepts the same texts that
// numpy itself writes and rejects everything else with a reason.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace featpool::detail {

struct python_value {
  enum class kind { dict, tuple, list, string, integer, boolean, none };

  kind type = kind::none;
  std::string text;                        // a string's contents
  std::optional<std::uint64_t> magnitude;  // an integer's |value|; nullopt past 2^64
  bool negative = false;                   // an integer's sign
  bool truth = false;                      // a boolean's value
  std::vector<python_value> elements;      // tuple and list items, dict keys and values paired
  std::string_view source;                 // the literal's own text, as written
};

// Parses `text` as one literal followed only by white space. On failure
// returns nullopt and sets `reason`.
std::optional<python_value> parse_python_literal(std::string_view text, std::string& reason);

}  // namespace featpool::detail
