#include "zip_reason.hpp"

#include <cstring>
#include <string_view>

namespace featpool::detail {

std::string zip_reason(zip_error_t* err) {
  switch (zip_error_code_zip(err)) {
    case ZIP_ER_NOZIP:
      return "not a zip archive";
    case ZIP_ER_INCONS:
      return "damaged zip archive: its central directory is inconsistent";
    case ZIP_ER_MULTIDISK:
      return "split (multi-disk) zip archives are not supported";
    case ZIP_ER_INVAL:
      // What libzip 1.7 reports when a member's local header is not where
      // the central directory points, or does not parse.
      return "damaged zip archive: the member's local header is missing or invalid";
    case ZIP_ER_EOF:
      return "truncated zip archive: unexpected end of file";
    case ZIP_ER_CRC:
      return "corrupt data: CRC check failed";
    case ZIP_ER_COMPRESSED_DATA:
      return "corrupt compressed data";
    case ZIP_ER_ZLIB: {
      // "Zlib error: data error": keep zlib's words, drop libzip's prefix.
      std::string_view text = zip_error_strerror(err);
      auto colon = text.find(": ");
      return "corrupt compressed data (zlib: " +
             std::string(colon == std::string_view::npos ? text : text.substr(colon + 2)) + ")";
    }
    case ZIP_ER_ENCRNOTSUPP:
    case ZIP_ER_NOPASSWD:
    case ZIP_ER_WRONGPASSWD:
      return "encrypted members are not supported";
    case ZIP_ER_COMPNOTSUPP:
      return "compression method not supported";
    case ZIP_ER_READ:
    case ZIP_ER_SEEK:
    case ZIP_ER_TELL:
      return std::string("read failed: ") + std::strerror(zip_error_code_system(err));
    case ZIP_ER_MEMORY:
      return "out of memory";
    default: {
      std::string text = zip_error_strerror(err);
      if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z')
        text[0] = static_cast<char>(text[0] - 'A' + 'a');
      return text;
    }
  }
}

std::string zip_reason(int code) {
  zip_error_t err;
  zip_error_init_with_code(&err, code);
  std::string reason = zip_reason(&err);
  zip_error_fini(&err);
  return reason;
}

std::string compression_method_name(zip_uint16_t method) {
  switch (method) {
    case ZIP_CM_DEFLATE64:
      return "deflate64 (9)";
    case ZIP_CM_BZIP2:
      return "bzip2 (12)";
    case ZIP_CM_LZMA:
      return "LZMA (14)";
    case 93:  // ZIP_CM_ZSTD, unknown to libzip 1.7's header
      return "zstd (93)";
    case ZIP_CM_XZ:
      return "xz (95)";
    case ZIP_CM_PPMD:
      return "PPMd (98)";
    default:
      return std::to_string(method);
  }
}

}  // namespace featpool::detail
