#pragma once
// libzip's reasons for a failure, in the words featpool's messages use.

#include <string>

#include <zip.h>

namespace featpool::detail {

std::string zip_reason(zip_error_t* err);
std::string zip_reason(int code);

// A compression method's name and number, e.g. "LZMA (14)".
std::string compression_method_name(zip_uint16_t method);

}  // namespace featpool::detail
