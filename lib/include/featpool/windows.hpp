#pragma once
// Adaptive pooling windows, exactly as PyTorch computes them: for input
// length L and output length S, window i covers [floor(i·L/S),
// ceil((i+1)·L/S)), in integer arithmetic. Windows overlap when S does not
// divide L, and repeat when S > L.

#include <cstdint>
#include <vector>

namespace featpool {

struct axis_windows {
  std::uint64_t input_length = 0;
  std::uint64_t output_length = 0;
  std::vector<std::uint64_t> start;  // per output index, first input index
  std::vector<std::uint64_t> end;    // per output index, one past the last

  std::uint64_t size(std::uint64_t window) const { return end[window] - start[window]; }

  // The first and last window that contain input index x: the streaming
  // kernels go from an element to the cells it feeds. Computed, not
  // tabled, so that a long axis (10^7 elements) costs no memory per index.
  std::uint64_t first_window(std::uint64_t x) const;
  std::uint64_t last_window(std::uint64_t x) const;
  // One past the last index after x that lies in the same windows as x:
  // the kernels take such a run of rows in one pass.
  std::uint64_t same_windows_until(std::uint64_t x) const;
};

// Both lengths must be at least 1.
axis_windows plan_axis(std::uint64_t input_length, std::uint64_t output_length);

}  // namespace featpool
