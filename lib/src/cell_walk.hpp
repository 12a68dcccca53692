#pragma once
// Walks the input in storage order, from an element to the output cells
// whose windows hold it: the kernels that take each element on its own
// (lse_kernel.cpp, argmax_kernel.cpp) go through the input with it.

#include <algorithm>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "pool_geometry.hpp"

namespace featpool {

class cell_walk {
 public:
  // Starts at the element with storage index `position`.
  cell_walk(const geometry& g, std::uint64_t position) : g_(g), index_(g.axes.size()) {
    for (std::size_t m = g.axes.size(); m-- > 0;) {
      // An axis of length 0 (a batch of 0) leaves no element to walk.
      std::uint64_t extent = std::max<std::uint64_t>(g.axes[m].extent, 1);
      index_[m] = position % extent;
      position /= extent;
      spatial_offset_ += index_[m] * g.axes[m].plane_stride;
    }
    for (const auto& axis : g.axes) {
      if (axis.windows) spatial_.push_back(&axis);
    }
    first_.resize(spatial_.size());
    last_.resize(spatial_.size());
    current_.resize(spatial_.size());
  }

  // Calls visit(cell) for every cell of the current element.
  template <class Visit>
  void visit_cells(Visit&& visit) {
    std::uint64_t base = 0;
    for (std::size_t m = 0, s = 0; m < g_.axes.size(); ++m) {
      const auto& axis = g_.axes[m];
      if (!axis.windows) {
        base += index_[m] * axis.output_stride;
        continue;
      }
      first_[s] = axis.windows->first_window(index_[m]);
      last_[s] = axis.windows->last_window(index_[m]);
      current_[s] = first_[s];
      ++s;
    }
    for (;;) {
      std::uint64_t cell = base;
      for (std::size_t s = 0; s < spatial_.size(); ++s) {
        cell += current_[s] * spatial_[s]->output_stride;
      }
      visit(cell);
      std::size_t s = spatial_.size();
      while (s-- > 0 && current_[s] == last_[s]) current_[s] = first_[s];
      if (s == static_cast<std::size_t>(-1)) return;
      ++current_[s];
    }
  }

  // The current element's offset in the input's spatial plane: its
  // spatial coordinates in layout order, flattened in C order, as
  // PyTorch's return_indices counts them.
  std::uint64_t spatial_offset() const { return spatial_offset_; }

  void advance() {
    for (std::size_t m = index_.size(); m-- > 0;) {
      const auto& axis = g_.axes[m];
      if (++index_[m] < axis.extent) {
        spatial_offset_ += axis.plane_stride;
        return;
      }
      index_[m] = 0;
      spatial_offset_ -= (axis.extent - 1) * axis.plane_stride;
    }
  }

 private:
  const geometry& g_;
  std::vector<std::uint64_t> index_;  // per storage axis
  std::uint64_t spatial_offset_ = 0;
  std::vector<const memory_axis*> spatial_;
  std::vector<std::uint64_t> first_, last_, current_;  // per spatial axis
};

// A stream of such a kernel: it hands its blocks to a Feed, the kernel's
// walk over the input from where the stream starts.
template <class Feed>
class feed_stream final : public pooler::stream {
 public:
  explicit feed_stream(Feed feed) : feed_(std::move(feed)) {}
  void consume(std::span<const std::byte> block) override { feed_.consume(block); }

 private:
  Feed feed_;
};

}  // namespace featpool
