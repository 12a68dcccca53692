#pragma once
// Reading zip members for the formats that are zip archives (NPZ, PyTorch's
// torch.save files): opening an archive with messages that name the file,
// the sizes in the zip directory checked against the archive before anything
// is set aside for them, members as byte streams capped at their size, and
// a pool of archive handles for readers on several threads.

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "featpool/byte_stream.hpp"
#include "featpool/error.hpp"
#include "featpool/source.hpp"
#include "featpool/zip.hpp"

namespace featpool::detail {

using zip_archive_ptr = std::unique_ptr<zip_reader>;

// Compression methods whose output is bounded by their input: stored data
// is itself, and deflate turns a byte into at most 1032 (a 258-byte match
// in two bits).
inline constexpr std::uint16_t kStored = 0;
inline constexpr std::uint16_t kDeflated = 8;
inline constexpr std::uint64_t kMaxDeflateRatio = 1032;

// Opens `path` read-only for libzip; `bytes`, when given, receives its size.
// A file that is no zip archive at all is "not an FORMAT file".
zip_archive_ptr open_zip_archive(const std::string& path, std::string_view format,
                                 std::uint64_t* bytes = nullptr);

// Refuses, up front and in plain words, members libzip could not read.
void check_member_readable(const zip_entry& entry, const std::string& file,
                           const std::string& tensor);

// The zip directory's sizes against what the archive can hold: no member
// takes more bytes than the archive has, and stored and deflated members
// hold no more than their compressed bytes can give (other methods are held
// to the first rule only: bzip2 can shrink data a million times). Readers
// make room for what a member claims, so this comes first.
void check_member_sizes(const zip_entry& entry, const std::string& file, const std::string& tensor,
                        std::uint64_t archive_bytes);

// One member of an open archive, read through libzip. Its size is the
// uncompressed size in the zip directory, which caps every read; finish()
// reads to the end so that libzip checks the CRC, and checks the size.
class zip_member_stream final : public byte_stream {
 public:
  zip_member_stream(zip_reader& archive, std::uint64_t index, std::uint64_t size, std::string file,
                    std::string tensor)
      : size_(size), file_(std::move(file)), tensor_(std::move(tensor)) {
    try {
      member_ = archive.open(index);
    } catch (const zip_failure& failure) {
      throw error(file_, tensor_, failure.what());
    }
  }

  std::size_t read(std::span<std::byte> buffer) override {
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), size_ - position_));
    std::size_t done = 0;
    while (done < want) {
      std::size_t got = read_member(buffer.subspan(done, want - done));
      if (got == 0) {
        // libzip 1.7 checks the CRC at the end of every member but the
        // length of stored ones only: a deflated member whose size in the
        // directory is too large shows up here.
        throw error(file_, tensor_,
                    fmt::format("damaged zip archive: the member holds {} bytes, the zip "
                                "directory says {}",
                                position_ + done, size_));
      }
      done += got;
    }
    position_ += done;
    return done;
  }

  std::optional<std::uint64_t> size() const override { return size_; }

  // Reads what is left of the member (bytes after the NPY data are allowed,
  // numpy ignores them too) and one byte past its end: libzip verifies the
  // CRC only when a read reaches the end of the member's data, and a member
  // that still has data there decompresses to more than the directory says.
  void finish() {
    std::array<std::byte, 16384> scratch;
    while (position_ < size_) read(scratch);
    if (read_member(std::span(scratch).first(1)) > 0) {
      throw error(file_, tensor_,
                  fmt::format("damaged zip archive: the member holds more than the {} bytes the "
                              "zip directory says",
                              size_));
    }
  }

 private:
  // One read from libzip, its failure naming the file and the tensor.
  std::size_t read_member(std::span<std::byte> buffer) {
    try {
      return member_->read(buffer);
    } catch (const zip_failure& failure) {
      throw error(file_, tensor_, failure.what());
    }
  }

  std::unique_ptr<zip_member> member_;
  std::uint64_t size_;
  std::uint64_t position_ = 0;
  std::string file_;
  std::string tensor_;
};

// The archive handles of one source not in use by a reader. Opening an
// archive parses its whole central directory, so a reader takes an idle
// handle when there is one: reading every member of an archive of 5000 then
// costs one parse rather than 5000 (minutes instead of a second). A handle
// serves one reader at a time, since libzip's are not thread-safe.
class archive_pool {
 public:
  archive_pool(std::string path, std::string_view format)
      : path_(std::move(path)), format_(format) {}

  zip_archive_ptr take() {
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        auto archive = std::move(idle_.back());
        idle_.pop_back();
        return archive;
      }
    }
    return open_zip_archive(path_, format_);
  }

  // Keeps `archive` for the next reader. Dropping it instead is harmless.
  void give_back(zip_archive_ptr archive) noexcept {
    try {
      std::lock_guard lock(mutex_);
      idle_.push_back(std::move(archive));
    } catch (...) {
    }
  }

 private:
  std::string path_;
  std::string_view format_;  // for open_zip_archive
  std::mutex mutex_;
  std::vector<zip_archive_ptr> idle_;
};

// A reader of a member with the archive handle it reads through, given
// back to the pool when the reader is done, unless a read threw: libzip
// gives no promise about a handle's state after an error.
class pooled_archive_reader final : public block_reader {
 public:
  pooled_archive_reader(std::shared_ptr<archive_pool> pool, zip_archive_ptr archive,
                        std::unique_ptr<block_reader> reader)
      : pool_(std::move(pool)), archive_(std::move(archive)), reader_(std::move(reader)) {}

  ~pooled_archive_reader() override {
    reader_.reset();  // closes the member before its archive serves another reader
    if (!failed_) pool_->give_back(std::move(archive_));
  }
  pooled_archive_reader(const pooled_archive_reader&) = delete;
  pooled_archive_reader& operator=(const pooled_archive_reader&) = delete;

  std::span<const std::byte> next() override {
    failed_ = true;  // until this block is known good
    auto block = reader_->next();
    failed_ = false;
    return block;
  }

 private:
  std::shared_ptr<archive_pool> pool_;
  zip_archive_ptr archive_;               // declared before reader_: outlives the member
  std::unique_ptr<block_reader> reader_;  // reads the member through archive_
  bool failed_ = false;                   // a read threw
};

}  // namespace featpool::detail
