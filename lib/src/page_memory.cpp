#include "featpool/page_memory.hpp"

#include <sys/mman.h>

namespace featpool {

void* map_pages(std::size_t bytes) {
  // MAP_NORESERVE: memory follows what is written, so a tensor that
  // claims more than arrives does not reserve what never comes.
  void* pages = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (pages == MAP_FAILED) throw std::bad_alloc();
  // Only advice: where huge pages are off, nothing changes.
  ::madvise(pages, bytes, MADV_HUGEPAGE);
  return pages;
}

void unmap_pages(void* pages, std::size_t bytes) noexcept { ::munmap(pages, bytes); }

}  // namespace featpool
