#include "zip_archive_writer.hpp"

#include <cstring>
#include <string>

#include <zip.h>

namespace featpool::detail {
namespace {

// libzip's own words, unlike the reader's: opening fails for reasons of the
// file system, which libzip states plainly.
std::string zip_error_text(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string reason = zip_error_strerror(&error);
  zip_error_fini(&error);
  return reason;
}

class libzip_writer final : public zip_writer {
 public:
  explicit libzip_writer(zip_t* archive) : archive_(archive) {}
  ~libzip_writer() override {
    if (archive_) zip_discard(archive_);
  }
  libzip_writer(const libzip_writer&) = delete;
  libzip_writer& operator=(const libzip_writer&) = delete;

  void add(const std::string& name, std::span<const std::byte> bytes) override {
    constexpr zip_uint16_t kDosTime = 0;
    constexpr zip_uint16_t kDosDate = (0 << 9) | (1 << 5) | 1;  // 1980-01-01
    zip_source_t* source = zip_source_buffer(archive_, bytes.data(), bytes.size(), 0);
    if (!source) fail();
    zip_int64_t index = zip_file_add(archive_, name.c_str(), source, ZIP_FL_ENC_UTF_8);
    if (index < 0) {
      zip_source_free(source);
      fail();
    }
    auto entry = static_cast<zip_uint64_t>(index);
    if (zip_set_file_compression(archive_, entry, ZIP_CM_STORE, 0) != 0 ||
        zip_file_set_dostime(archive_, entry, kDosTime, kDosDate, 0) != 0) {
      fail();
    }
  }

  void close() override {
    if (zip_close(archive_) != 0) fail();
    archive_ = nullptr;
  }

 private:
  // The system's words when the file system failed ("No space left on
  // device"), without libzip's "Write error: " before them.
  [[noreturn]] void fail() const {
    zip_error_t* error = zip_get_error(archive_);
    if (zip_error_system_type(error) == ZIP_ET_SYS) {
      throw zip_failure(std::strerror(zip_error_code_system(error)));
    }
    throw zip_failure(zip_strerror(archive_));
  }

  zip_t* archive_;  // null once written
};

}  // namespace

std::unique_ptr<zip_writer> create_zip_archive(const char* path) {
  int code = 0;
  zip_t* archive = zip_open(path, ZIP_TRUNCATE, &code);
  if (!archive) throw zip_failure(zip_error_text(code));
  return std::make_unique<libzip_writer>(archive);
}

}  // namespace featpool::detail
