#pragma once
// Reading a zip archive through libzip, behind featpool::zip_reader.

#include <memory>

#include "featpool/zip.hpp"

namespace featpool::detail {

// Reads the archive open on `fd`, which the reader owns from then on. Throws
// zip_failure, leaving `fd` open.
std::unique_ptr<zip_reader> open_zip_archive(int fd);

}  // namespace featpool::detail
