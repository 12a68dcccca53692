// The module's two exported symbols, its entry points: featpool_lib dlopens
// featpool_zip.so on the first NPZ file it reads or writes and calls them;
// everything else in the module stays hidden, so the module can never
// interpose on the executable's own symbols.
//
// Errors cross the boundary as C++ exceptions, featpool::zip_failure: g++
// matches exception types across shared objects by their mangled name, so
// the executable catches the module's zip_failure as its own.

#include <type_traits>

#include "zip_archive_reader.hpp"
#include "zip_archive_writer.hpp"

#include "featpool/zip.hpp"

extern "C" __attribute__((visibility("default"))) featpool::zip_reader* featpool_zip_open(int fd) {
  return featpool::detail::open_zip_archive(fd).release();
}

extern "C" __attribute__((visibility("default"))) featpool::zip_writer* featpool_zip_create(
    const char* path) {
  return featpool::detail::create_zip_archive(path).release();
}

static_assert(std::is_same_v<decltype(&featpool_zip_open), featpool::zip_open_function>,
              "the entry point must match what the loader looks up");
static_assert(std::is_same_v<decltype(&featpool_zip_create), featpool::zip_create_function>,
              "the entry point must match what the loader looks up");
