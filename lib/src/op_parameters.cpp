// The values of the flags that only one op takes: gem's --p and --eps,
// lse's --r.

#include <charconv>
#include <cmath>
#include <string_view>

#include <fmt/format.h>

#include "featpool/error.hpp"
#include "featpool/pool.hpp"

namespace featpool {
namespace {

double positive_number(std::string_view flag, std::string_view text, double fallback) {
  if (text.empty()) return fallback;
  double value = 0;
  auto [end, failure] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (failure != std::errc{} || end != text.data() + text.size() || !std::isfinite(value) ||
      value <= 0) {
    throw usage_error(fmt::format("{}: '{}': expected a positive number", flag, text));
  }
  return value;
}

}  // namespace

gem_params parse_gem_params(std::string_view p, std::string_view eps) {
  gem_params defaults;
  return {positive_number("--p", p, defaults.p), positive_number("--eps", eps, defaults.eps)};
}

double parse_lse_r(std::string_view r) { return positive_number("--r", r, kDefaultLseR); }

}  // namespace featpool
