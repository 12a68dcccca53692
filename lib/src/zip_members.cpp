#include "zip_members.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace featpool::detail {

// The descriptor is opened by featpool so that a missing file reads "No such
// file or directory" rather than libzip's "No such file", and so that an
// empty file, which libzip 1.7 calls "not a zip archive", is named for what
// it is.
zip_archive_ptr open_zip_archive(const std::string& path, std::string_view format,
                                 std::uint64_t* bytes) {
  // O_NONBLOCK: opening a FIFO by mistake must not wait for a writer.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw error(path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int saved = errno;
    ::close(fd);
    throw error(path, std::strerror(saved));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    if (S_ISDIR(st.st_mode)) throw error(path, std::strerror(EISDIR));
    throw error(path, "not a regular file: a zip archive cannot be read as a stream");
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  if (st.st_size == 0) {
    ::close(fd);
    throw error(path, "empty file");
  }
  if (bytes) *bytes = static_cast<std::uint64_t>(st.st_size);
  zip_archive_ptr archive;
  try {
    archive = open_zip_reader(fd, path);  // owns fd now
  } catch (const zip_failure& failure) {
    // Every zip starts with a local file header. One that lost its end (the
    // central directory) is a truncated archive, not some other kind of file.
    std::array<char, 4> signature{};
    bool starts_like_zip = ::pread(fd, signature.data(), signature.size(), 0) == 4 &&
                           std::memcmp(signature.data(), "PK\x03\x04", 4) == 0;
    ::close(fd);
    if (failure.not_a_zip()) {
      throw error(path, starts_like_zip
                            ? "truncated zip archive: the central directory at its end is missing"
                            : fmt::format("not an {} file: not a zip archive", format));
    }
    throw error(path, failure.what());
  } catch (...) {
    ::close(fd);  // the module could not be loaded
    throw;
  }
  return archive;
}

void check_member_readable(const zip_entry& entry, const std::string& file,
                           const std::string& tensor) {
  if (entry.encrypted) throw error(file, tensor, "encrypted members are not supported");
  if (entry.unsupported_compression) {
    throw error(
        file, tensor,
        fmt::format("compression method {} is not supported", *entry.unsupported_compression));
  }
}

void check_member_sizes(const zip_entry& entry, const std::string& file, const std::string& tensor,
                        std::uint64_t archive_bytes) {
  if (entry.compressed_size > archive_bytes) {
    throw error(file, tensor,
                fmt::format("damaged zip archive: the zip directory says the member takes {} "
                            "bytes, the archive has {}",
                            entry.compressed_size, archive_bytes));
  }
  std::uint64_t ratio = entry.method == kStored     ? 1
                        : entry.method == kDeflated ? kMaxDeflateRatio
                                                    : 0;
  if (ratio != 0 && entry.size / ratio > entry.compressed_size) {
    throw error(file, tensor,
                fmt::format("damaged zip archive: the zip directory says the member holds {} "
                            "bytes, more than its {} {} bytes can",
                            entry.size, entry.compressed_size,
                            entry.method == kStored ? "stored" : "deflated"));
  }
}

}  // namespace featpool::detail
