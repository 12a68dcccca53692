#include "featpool/windows.hpp"

namespace featpool {
namespace {

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
  // Starts and ends never decrease with i, so one sweep finds, for each
  // input index, the windows that cover it.
  plan.first_window.assign(input_length, 0);
  plan.last_window.assign(input_length, 0);
  std::uint64_t first = 0;
  for (std::uint64_t x = 0; x < input_length; ++x) {
    while (plan.end[first] <= x) ++first;
    plan.first_window[x] = first;
  }
  std::uint64_t last = output_length - 1;
  for (std::uint64_t x = input_length; x-- > 0;) {
    while (plan.start[last] > x) --last;
    plan.last_window[x] = last;
  }
  plan.same_windows_until.assign(input_length, input_length);
  for (std::uint64_t x = input_length - 1; x-- > 0;) {
    bool same = plan.first_window[x] == plan.first_window[x + 1] &&
                plan.last_window[x] == plan.last_window[x + 1];
    plan.same_windows_until[x] = same ? plan.same_windows_until[x + 1] : x + 1;
  }
  return plan;
}

}  // namespace featpool
