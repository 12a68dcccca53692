#include "featpool/windows.hpp"

#include <algorithm>

namespace featpool {
namespace {

// GCC's 128-bit integer, which ISO C++ lacks (hence __extension__).
__extension__ typedef unsigned __int128 wide;

// PyTorch's start_index and end_index (aten/src/ATen/native/AdaptivePooling.h),
// written to avoid overflowing i·L: floor(i·L/S) = (i/S)·L + ((i%S)·L)/S.
std::uint64_t window_start(std::uint64_t i, std::uint64_t out, std::uint64_t in) {
  return (i / out) * in + ((i % out) * in) / out;
}

std::uint64_t window_end(std::uint64_t i, std::uint64_t out, std::uint64_t in) {
  // ceil((i+1)·L/S) = floor(((i+1)·L - 1)/S) + 1 for L ≥ 1.
  std::uint64_t next = i + 1;
  std::uint64_t whole = (next / out) * in;
  std::uint64_t part = (next % out) * in;
  return whole + (part + out - 1) / out;
}

}  // namespace

axis_windows plan_axis(std::uint64_t input_length, std::uint64_t output_length) {
  axis_windows plan;
  plan.input_length = input_length;
  plan.output_length = output_length;
  plan.start.resize(output_length);
  plan.end.resize(output_length);
  for (std::uint64_t i = 0; i < output_length; ++i) {
    plan.start[i] = window_start(i, output_length, input_length);
    plan.end[i] = window_end(i, output_length, input_length);
  }
  return plan;
}

// Window o ends past x when ceil((o+1)·L/S) > x, that is when o ≥
// floor(x·S/L); it starts at or before x when floor(o·L/S) ≤ x, that is
// when o < (x+1)·S/L. The products are taken in 128 bits: x·S can pass
// 2^64 for a long axis pooled to a large size.
std::uint64_t axis_windows::first_window(std::uint64_t x) const {
  return static_cast<std::uint64_t>(wide{x} * output_length / input_length);
}

std::uint64_t axis_windows::last_window(std::uint64_t x) const {
  wide bound = wide{x + 1} * output_length;
  return static_cast<std::uint64_t>((bound + input_length - 1) / input_length) - 1;
}

// The windows change where the first one ends or where the one after the
// last begins.
std::uint64_t axis_windows::same_windows_until(std::uint64_t x) const {
  std::uint64_t until = end[first_window(x)];
  std::uint64_t next = last_window(x) + 1;
  if (next < output_length) until = std::min(until, start[next]);
  return until;
}

}  // namespace featpool
