#include "zip_archive_reader.hpp"

#include <utility>

#include "zip_reason.hpp"
#include <zip.h>

namespace featpool::detail {
namespace {

class libzip_member final : public zip_member {
 public:
  explicit libzip_member(zip_file_t* file) : file_(file) {}
  ~libzip_member() override { zip_fclose(file_); }
  libzip_member(const libzip_member&) = delete;
  libzip_member& operator=(const libzip_member&) = delete;

  std::size_t read(std::span<std::byte> buffer) override {
    zip_int64_t got = zip_fread(file_, buffer.data(), buffer.size());
    if (got < 0) throw zip_failure(zip_reason(zip_file_get_error(file_)));
    return static_cast<std::size_t>(got);
  }

 private:
  zip_file_t* file_;
};

class libzip_reader final : public zip_reader {
 public:
  explicit libzip_reader(zip_t* archive) : archive_(archive) {}
  // Read-only archives are discarded, never closed: there is nothing to
  // write.
  ~libzip_reader() override { zip_discard(archive_); }
  libzip_reader(const libzip_reader&) = delete;
  libzip_reader& operator=(const libzip_reader&) = delete;

  std::uint64_t entry_count() const override {
    zip_int64_t count = zip_get_num_entries(archive_, 0);
    return count < 0 ? 0 : static_cast<std::uint64_t>(count);
  }

  zip_entry entry(std::uint64_t index) override {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(archive_, index, 0, &st) != 0) {
      throw zip_failure(zip_reason(zip_get_error(archive_)));
    }
    zip_entry entry;
    if (st.name) entry.name = st.name;
    entry.size = st.size;
    entry.compressed_size = st.comp_size;
    entry.method = st.comp_method;
    entry.encrypted =
        (st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE;
    if ((st.valid & ZIP_STAT_COMP_METHOD) &&
        !zip_compression_method_supported(st.comp_method, /*compress=*/0)) {
      entry.unsupported_compression = compression_method_name(st.comp_method);
    }
    return entry;
  }

  std::unique_ptr<zip_member> open(std::uint64_t index) override {
    zip_file_t* file = zip_fopen_index(archive_, index, 0);
    if (!file) throw zip_failure(zip_reason(zip_get_error(archive_)));
    return std::make_unique<libzip_member>(file);
  }

 private:
  zip_t* archive_;
};

}  // namespace

std::unique_ptr<zip_reader> open_zip_archive(int fd) {
  int code = ZIP_ER_OK;
  // Not ZIP_CHECKCONS: it compares every local header with the central
  // directory down to the timestamps and refuses archives numpy loads
  // without complaint. The data is checked anyway: the CRC and the size of
  // every member while it is streamed.
  zip_t* archive = zip_fdopen(fd, ZIP_RDONLY, &code);
  if (!archive) throw zip_failure(zip_reason(code), code == ZIP_ER_NOZIP);
  return std::make_unique<libzip_reader>(archive);  // libzip owns fd now
}

}  // namespace featpool::detail
