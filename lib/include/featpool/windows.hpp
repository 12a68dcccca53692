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
  // Per input index, the first and last window that contain it: the
  // streaming kernels go from an element to the cells it feeds.
  std::vector<std::uint64_t> first_window;
  std::vector<std::uint64_t> last_window;
  // Per input index x, one past the last index after x that lies in the
  // same windows: the kernels take such a run of rows in one pass.
  std::vector<std::uint64_t> same_windows_until;

  std::uint64_t size(std::uint64_t window) const { return end[window] - start[window]; }
};

// Both lengths must be at least 1.
axis_windows plan_axis(std::uint64_t input_length, std::uint64_t output_length);

}  // namespace featpool
