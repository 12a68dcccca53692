#pragma once
// Pooling accumulators whose memory is committed as the data reaches them.
//
// A stream's NPY header may claim a shape of terabytes that never arrives,
// and a stream's size cannot be checked first as a file's is. So the cells
// are in pages of their own (map_pages) rather than on the heap: the
// system commits a page when it is first written, and memory follows the
// data that actually arrived. A start
// of zero bits (a sum's) needs no writing at all; any other (a max's
// lowest value) is written up to the cells the data has reached so far
// (fill_to).

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <new>

#include "featpool/page_memory.hpp"

namespace featpool {

template <class T>
class lazy_cells {
 public:
  lazy_cells(std::uint64_t count, T initial) : count_(count), initial_(initial) {
    if (count == 0) return;
    if (__builtin_mul_overflow(count, sizeof(T), &bytes_)) throw std::bad_alloc();
    data_ = static_cast<T*>(map_pages(bytes_));
    const std::array<unsigned char, sizeof(T)> zero_bits{};
    if (std::memcmp(&initial_, zero_bits.data(), sizeof(T)) == 0) filled_ = count_;
  }
  ~lazy_cells() {
    if (data_ != nullptr) unmap_pages(data_, bytes_);
  }
  lazy_cells(const lazy_cells&) = delete;
  lazy_cells& operator=(const lazy_cells&) = delete;

  // Gives cells [0, end) their initial value, if they have none yet. Not
  // thread-safe: the kernel calls it from one thread at a time.
  void fill_to(std::uint64_t end) {
    end = std::min(end, count_);
    if (end <= filled_) return;
    std::fill(data_ + filled_, data_ + end, initial_);
    filled_ = end;
  }

  T* data() { return data_; }
  T& operator[](std::uint64_t i) { return data_[i]; }

 private:
  std::uint64_t count_;
  T initial_;
  std::uint64_t bytes_ = 0;
  T* data_ = nullptr;
  std::uint64_t filled_ = 0;
};

}  // namespace featpool
