#pragma once
// Memory for large arrays straight from the system's pages, not the heap.
//
// The system commits such memory a page at a time, when it is first
// touched, and every byte starts as zero. Large mappings are advised to
// use huge pages: a page fault costs microseconds on some virtual
// machines, and a pooled output of millions of values would otherwise
// take thousands of them.

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace featpool {

// `bytes` (> 0) of zeroed, lazily committed pages; throws std::bad_alloc.
void* map_pages(std::size_t bytes);
// Returns what map_pages(bytes) gave.
void unmap_pages(void* pages, std::size_t bytes) noexcept;

// An allocator for buffers whose every element is written before it is
// read: arrays of kPagedBytes or more come from map_pages, smaller ones
// from the heap, and resize() leaves new elements uninitialized instead of
// writing zeros over memory that is about to be overwritten.
template <class T>
class paged_allocator {
 public:
  using value_type = T;
  static constexpr std::size_t kPagedBytes = std::size_t{1} << 20;

  paged_allocator() = default;
  template <class U>
  paged_allocator(const paged_allocator<U>&) noexcept {}

  T* allocate(std::size_t count) {
    if (count > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
    const std::size_t bytes = count * sizeof(T);
    if (bytes >= kPagedBytes) return static_cast<T*>(map_pages(bytes));
    return static_cast<T*>(::operator new (bytes, std::align_val_t{alignof(T)}));
  }
  void deallocate(T* data, std::size_t count) noexcept {
    const std::size_t bytes = count * sizeof(T);
    if (bytes >= kPagedBytes) {
      unmap_pages(data, bytes);
    } else {
      ::operator delete (data, std::align_val_t{alignof(T)});
    }
  }

  // Default-initialization: nothing at all for bytes and numbers.
  template <class U>
  void construct(U* at) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(at)) U;
  }
  template <class U, class... Args>
  void construct(U* at, Args&&... args) {
    ::new (static_cast<void*>(at)) U(std::forward<Args>(args)...);
  }

  template <class U>
  bool operator==(const paged_allocator<U>&) const noexcept {
    return true;
  }
};

template <class T>
using paged_vector = std::vector<T, paged_allocator<T>>;

// A tensor's bytes, as pooling produces them.
using byte_buffer = paged_vector<std::byte>;

}  // namespace featpool
