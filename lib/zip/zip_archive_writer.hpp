#pragma once
// Writing a zip archive through libzip, behind featpool::zip_writer.

#include <memory>

#include "featpool/zip.hpp"

namespace featpool::detail {

// Creates (or truncates) the archive at `path`. Throws zip_failure.
std::unique_ptr<zip_writer> create_zip_archive(const char* path);

}  // namespace featpool::detail
