#pragma once
// Zip archives, for NPZ files. Linking libzip loads libcrypto, libbz2 and
// libz with it, and relocating them costs every run milliseconds, so the code
// that calls libzip lives in a separately loaded module (featpool_zip.so
// beside the executable), dlopen'ed on the first NPZ file read or written: a
// run that touches only NPY files never loads it. The module only wraps
// libzip; what an NPZ file holds is npz.cpp's business.
//
// The module's failures are zip_failure: libzip's reason in featpool's words,
// without the file and member it concerns, which the callers add.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>

namespace featpool {

class zip_failure : public std::runtime_error {
 public:
  explicit zip_failure(const std::string& reason, bool not_a_zip = false)
      : std::runtime_error(reason), not_a_zip_(not_a_zip) {}
  // libzip found no zip archive in the file (no end of central directory).
  bool not_a_zip() const noexcept { return not_a_zip_; }

 private:
  bool not_a_zip_;
};

// One entry of the zip directory.
struct zip_entry {
  std::optional<std::string> name;    // unset if libzip knows none
  std::uint64_t size = 0;             // uncompressed, as the directory says
  std::uint64_t compressed_size = 0;  // in the archive, as the directory says
  std::uint16_t method = 0;           // compression method: 0 stored, 8 deflated, ...
  bool encrypted = false;
  // The compression method's name, e.g. "LZMA (14)", when libzip cannot
  // decompress it.
  std::optional<std::string> unsupported_compression;
};

// A member's data, decompressed, as libzip hands it out: it stops where the
// compressed data ends, whatever the directory says, and checks the CRC when
// a read reaches that end.
class zip_member {
 public:
  virtual ~zip_member() = default;
  // Reads up to buffer.size() bytes; 0 at the end of the data. Throws
  // zip_failure.
  virtual std::size_t read(std::span<std::byte> buffer) = 0;
};

// An archive open for reading. Like libzip's handles, not thread-safe: one
// thread at a time, and members are destroyed before their archive.
class zip_reader {
 public:
  virtual ~zip_reader() = default;
  virtual std::uint64_t entry_count() const = 0;
  // Throws zip_failure.
  virtual zip_entry entry(std::uint64_t index) = 0;
  // Throws zip_failure.
  virtual std::unique_ptr<zip_member> open(std::uint64_t index) = 0;
};

// A new archive. Every member is stored (not compressed) and dated
// 1980-01-01 00:00, so the same members give the same bytes.
class zip_writer {
 public:
  // Discards the archive unless close() wrote it.
  virtual ~zip_writer() = default;
  // Adds a member; `bytes` are read by close(), so they must live until
  // then. Throws zip_failure.
  virtual void add(const std::string& name, std::span<const std::byte> bytes) = 0;
  // Writes the archive. Throws zip_failure.
  virtual void close() = 0;
};

// Reads the zip archive open on `fd`, a non-empty regular file; `path` names
// it in errors. The reader owns `fd`, unless this throws: zip_failure when
// libzip refuses the file, featpool::error when the module cannot be loaded.
std::unique_ptr<zip_reader> open_zip_reader(int fd, const std::string& path);

// Creates (or truncates) the archive at `path`; errors loading the module
// (featpool::error) name `display`. libzip's own failures are zip_failure.
std::unique_ptr<zip_writer> create_zip_writer(const std::string& path, const std::string& display);

// The module's file name and its entry points, shared by loader and module.
inline constexpr const char* kZipModuleFile = "featpool_zip.so";
inline constexpr const char* kZipOpenSymbol = "featpool_zip_open";
inline constexpr const char* kZipCreateSymbol = "featpool_zip_create";
extern "C" {
// Returns a new zip_reader the caller owns, owning `fd`; throws zip_failure
// and leaves `fd` to the caller.
using zip_open_function = zip_reader* (*)(int fd);
// Returns a new zip_writer the caller owns; throws zip_failure.
using zip_create_function = zip_writer* (*)(const char* path);
}

}  // namespace featpool
