#include "python_literal.hpp"

#include <cctype>

#include <fmt/format.h>

namespace featpool::detail {
namespace {

// Nesting deeper than this is not an NPY header; the bound keeps a hostile
// header from exhausting the stack.
constexpr int kMaxDepth = 16;

class literal_parser {
 public:
  explicit literal_parser(std::string_view text) : text_(text) {}

  std::optional<python_value> parse_document(std::string& reason) {
    auto value = parse_value(0);
    if (value) {
      skip_space();
      if (pos_ != text_.size()) fail("unexpected text after the dict");
    }
    if (!reason_.empty()) {
      reason = reason_;
      return std::nullopt;
    }
    return value;
  }

 private:
  std::optional<python_value> parse_value(int depth) {
    skip_space();
    if (depth > kMaxDepth) return fail("nested too deeply");
    if (pos_ == text_.size()) return fail("ends early");
    std::size_t start = pos_;
    std::optional<python_value> value;
    char c = text_[pos_];
    if (c == '{') {
      value = parse_sequence(python_value::kind::dict, '}', depth);
    } else if (c == '(') {
      value = parse_sequence(python_value::kind::tuple, ')', depth);
    } else if (c == '[') {
      value = parse_sequence(python_value::kind::list, ']', depth);
    } else if (c == '\'' || c == '"') {
      value = parse_string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      value = parse_integer();
    } else {
      value = parse_word();
    }
    if (value) value->source = text_.substr(start, pos_ - start);
    return value;
  }

  // Dicts, tuples and lists: items separated by commas, a trailing comma
  // allowed. A parenthesised single value without a comma is that value, as
  // in Python, so `(3)` is the integer 3, not a tuple.
  std::optional<python_value> parse_sequence(python_value::kind type, char close, int depth) {
    ++pos_;
    python_value result;
    result.type = type;
    bool saw_comma = false;
    for (;;) {
      skip_space();
      if (pos_ == text_.size()) return fail(fmt::format("missing '{}'", close));
      if (text_[pos_] == close) {
        ++pos_;
        break;
      }
      auto item = parse_value(depth + 1);
      if (!item) return std::nullopt;
      result.elements.push_back(std::move(*item));
      if (type == python_value::kind::dict) {
        skip_space();
        if (pos_ == text_.size() || text_[pos_] != ':')
          return fail("expected ':' after a dict key");
        ++pos_;
        auto mapped = parse_value(depth + 1);
        if (!mapped) return std::nullopt;
        result.elements.push_back(std::move(*mapped));
      }
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        saw_comma = true;
      } else if (pos_ < text_.size() && text_[pos_] != close) {
        return fail(fmt::format("expected ',' or '{}' at offset {}", close, pos_));
      }
    }
    if (type == python_value::kind::tuple && result.elements.size() == 1 && !saw_comma) {
      return std::move(result.elements.front());
    }
    return result;
  }

  std::optional<python_value> parse_string() {
    char quote = text_[pos_++];
    python_value result;
    result.type = python_value::kind::string;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] == '\\') {
        if (++pos_ == text_.size()) break;
      }
      result.text += text_[pos_++];
    }
    if (pos_ == text_.size()) return fail("unterminated string");
    ++pos_;
    return result;
  }

  std::optional<python_value> parse_integer() {
    python_value result;
    result.type = python_value::kind::integer;
    if (text_[pos_] == '-') {
      result.negative = true;
      ++pos_;
    }
    std::uint64_t magnitude = 0;
    bool overflow = false;
    std::size_t digits = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      auto digit = static_cast<std::uint64_t>(text_[pos_++] - '0');
      overflow = overflow || __builtin_mul_overflow(magnitude, 10u, &magnitude) ||
                 __builtin_add_overflow(magnitude, digit, &magnitude);
      ++digits;
    }
    if (digits == 0) return fail("'-' without digits");
    // Python 2's numpy wrote long integers as `3L`; numpy still reads them.
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;
    if (!overflow) result.magnitude = magnitude;
    return result;
  }

  std::optional<python_value> parse_word() {
    std::size_t start = pos_;
    while (pos_ < text_.size() && std::isalpha(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    std::string_view word = text_.substr(start, pos_ - start);
    python_value result;
    if (word == "True" || word == "False") {
      result.type = python_value::kind::boolean;
      result.truth = word == "True";
    } else if (word == "None") {
      result.type = python_value::kind::none;
    } else {
      pos_ = start;
      return fail(fmt::format("unexpected character at offset {}", start));
    }
    return result;
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\t' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  std::optional<python_value> fail(std::string reason) {
    if (reason_.empty()) reason_ = std::move(reason);
    return std::nullopt;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::string reason_;
};

}  // namespace

std::optional<python_value> parse_python_literal(std::string_view text, std::string& reason) {
  return literal_parser(text).parse_document(reason);
}

}  // namespace featpool::detail
