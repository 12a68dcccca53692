#include "h5_block_reader.hpp"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace featpool::detail {
namespace {

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return a / b + (a % b != 0); }

std::uint64_t saturating_mul(std::uint64_t a, std::uint64_t b) {
  std::uint64_t product = 0;
  return __builtin_mul_overflow(a, b, &product) ? UINT64_MAX : product;
}

class h5_block_reader final : public block_reader {
 public:
  h5_block_reader(h5_handle file, h5_handle dataset, h5_handle memory_type, const tensor_info& info,
                  const block_plan& plan, h5_context where)
      : file_(std::move(file)),
        dataset_(std::move(dataset)),
        memory_type_(std::move(memory_type)),
        where_(std::move(where)),
        shape_(info.shape),
        item_size_(dtype_size(*info.type)),
        plan_(plan),
        start_(info.shape.size(), 0),
        done_(info.element_count() == 0) {
    h5_lock lock;
    file_space_ = where_.own(H5Dget_space(dataset_.get()), "cannot read the dataspace");
  }

  std::span<const std::byte> next() override {
    if (done_) return {};
    h5_lock lock;
    if (shape_.empty()) {  // a scalar: one element, one block
      buffer_.resize(item_size_);
      where_.check(H5Dread(dataset_.get(), memory_type_.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                           buffer_.data()),
                   "cannot read the data");
      done_ = true;
      return buffer_;
    }

    std::vector<hsize_t> start(shape_.size(), 0);
    std::vector<hsize_t> count(shape_.begin(), shape_.end());
    std::uint64_t elements = 1;
    for (std::size_t axis = 0; axis < shape_.size(); ++axis) {
      if (axis < plan_.axis) {
        start[axis] = start_[axis];
        count[axis] = 1;
      } else if (axis == plan_.axis) {
        start[axis] = start_[axis];
        count[axis] = std::min<std::uint64_t>(plan_.step, shape_[axis] - start_[axis]);
      }
      elements *= count[axis];
    }
    where_.check(H5Sselect_hyperslab(file_space_.get(), H5S_SELECT_SET, start.data(), nullptr,
                                     count.data(), nullptr),
                 "cannot select the block");
    // The memory space has the block's own shape: with a shape different
    // from the file selection's (a flat 1-D run, say), HDF5 maps chunked
    // data into memory element by element, an order of magnitude slower.
    auto memory_space =
        where_.own(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
                   "cannot create a dataspace");
    buffer_.resize(static_cast<std::size_t>(elements) * item_size_);
    where_.check(H5Dread(dataset_.get(), memory_type_.get(), memory_space.get(), file_space_.get(),
                         H5P_DEFAULT, buffer_.data()),
                 "cannot read the data");
    advance(count[plan_.axis]);
    return buffer_;
  }

 private:
  // Moves start_ past the block just read, like an odometer over the axes up
  // to the plan's axis.
  void advance(std::uint64_t taken) {
    std::size_t axis = plan_.axis;
    start_[axis] += taken;
    while (start_[axis] == shape_[axis]) {
      start_[axis] = 0;
      if (axis == 0) {
        done_ = true;
        return;
      }
      ++start_[--axis];
    }
  }

  // Declared so that they close in reverse: the dataspace and the memory
  // type, then the dataset, then the file (each under the lock).
  h5_handle file_;
  h5_handle dataset_;
  h5_handle memory_type_;
  h5_handle file_space_;
  h5_context where_;
  std::vector<std::uint64_t> shape_;
  std::size_t item_size_;
  block_plan plan_;
  std::vector<std::uint64_t> start_;  // where the next block starts
  bool done_;
  std::vector<std::byte> buffer_;
};

}  // namespace

block_plan plan_blocks(const tensor_info& info) {
  block_plan plan;
  const auto& shape = info.shape;
  if (shape.empty() || info.element_count() == 0) return plan;
  std::uint64_t item = dtype_size(*info.type);
  const std::vector<std::uint64_t>* chunks =
      info.chunks && info.chunks->size() == shape.size() ? &*info.chunks : nullptr;

  // Bytes of one index step along each axis: the product of the later axes.
  std::vector<std::uint64_t> inner(shape.size(), item);
  for (std::size_t axis = shape.size() - 1; axis > 0; --axis) {
    inner[axis - 1] = saturating_mul(inner[axis], shape[axis]);
  }

  bool found = false;
  for (std::size_t axis = 0; axis < shape.size() && !found; ++axis) {
    std::uint64_t step = std::max<std::uint64_t>(1, kBlockBytes / inner[axis]);
    if (chunks) {
      std::uint64_t chunk = std::max<std::uint64_t>(1, (*chunks)[axis]);
      step = std::max(chunk, step / chunk * chunk);
    }
    step = std::min(step, shape[axis]);
    std::uint64_t bytes = saturating_mul(step, inner[axis]);
    if (chunks ? bytes <= kMaxChunkedBlockBytes : inner[axis] <= kBlockBytes) {
      plan.axis = axis;
      plan.step = step;
      found = true;
    }
  }
  if (!found) {
    // Chunks so large that even one chunk row along the last axis is too
    // much: plain blocks along it, the chunks kept in the cache below.
    plan.axis = shape.size() - 1;
    plan.step =
        std::min<std::uint64_t>(shape.back(), std::max<std::uint64_t>(1, kBlockBytes / item));
  }

  if (chunks) {
    // Blocks share chunks when an earlier axis fixes one index inside a
    // chunk that spans several, or when the range splits a chunk. Then the
    // chunks one sweep of the plan's axis touches stay cached, so each is
    // decompressed once.
    std::uint64_t earlier = 1;
    for (std::size_t axis = 0; axis < plan.axis; ++axis)
      earlier = saturating_mul(earlier, (*chunks)[axis]);
    std::uint64_t chunk = std::max<std::uint64_t>(1, (*chunks)[plan.axis]);
    bool splits = plan.step % chunk != 0 && plan.step < shape[plan.axis];
    if (earlier > 1 || splits) {
      std::uint64_t bytes = saturating_mul(item, earlier);
      for (std::size_t axis = plan.axis; axis < shape.size(); ++axis) {
        std::uint64_t extent = std::max<std::uint64_t>(1, (*chunks)[axis]);
        bytes = saturating_mul(bytes, saturating_mul(ceil_div(shape[axis], extent), extent));
      }
      plan.chunk_cache_bytes = std::min(bytes, kMaxChunkCacheBytes);
    }
  }
  return plan;
}

std::unique_ptr<block_reader> make_h5_block_reader(h5_handle file, h5_handle dataset,
                                                   h5_handle memory_type, const tensor_info& info,
                                                   const block_plan& plan, h5_context where) {
  return std::make_unique<h5_block_reader>(std::move(file), std::move(dataset),
                                           std::move(memory_type), info, plan, std::move(where));
}

}  // namespace featpool::detail
