// NPZ, as np.savez (stored) and np.savez_compressed (deflated) write it: a
// zip archive holding one NPY file per array, member "conv5.npy" for the
// array saved as conv5. numpy asks zipfile for zip64 headers on every member
// so that members of 2 GiB and more can be written; zip64 archives are read
// like any other.
//
// Accepted: every compression method the installed libzip decompresses
// (stored, deflate and bzip2 in Debian's build). A member ending in ".npy" is
// a tensor named without the suffix ('/' inside a name is part of it), in the
// archive's order, as numpy's NpzFile.files lists them. Any other member is a
// tensor under its full name when it holds NPY data, since np.load returns it
// as an array too, and is skipped otherwise: np.load hands it out as raw
// bytes, which are no tensor. Directory entries are skipped.
//
// Rejected, naming the file and the member: anything that is not a zip
// archive, a truncated or damaged one, split archives, encrypted members,
// compression methods libzip cannot decompress, two members giving the same
// tensor name, member names with control characters (every message stays one
// line), a ".npy" member that is not NPY data or holds fewer bytes than its
// header promises, and one whose sizes in the zip directory cannot be: more
// compressed bytes than the archive has, or more data than they can inflate
// to. Pooling makes room for what a member's header promises before reading
// it, so those sizes must be checked against the file first. While reading:
// a CRC mismatch, corrupt compressed data, and a member whose data is longer
// or shorter than the zip directory says. That size caps every read, so a
// zip bomb is cut off where the directory says the member ends, and
// streaming keeps memory bounded in any case.
//
// Members are streamed through libzip, never extracted to disk nor held whole
// in memory; libzip itself is called from the zip module (featpool/zip.hpp),
// loaded on the first archive opened. libzip's zip_t is not thread-safe, so a
// reader has an archive handle to itself, taken from the source's idle ones or
// opened anew: readers of one source may run on different threads.

#include "featpool/npz.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "featpool/byte_stream.hpp"
#include "featpool/error.hpp"
#include "featpool/npy.hpp"
#include "featpool/zip.hpp"

namespace featpool {
namespace {

using zip_archive_ptr = std::unique_ptr<zip_reader>;

// Compression methods whose output is bounded by their input: stored data
// is itself, and deflate turns a byte into at most 1032 (a 258-byte match
// in two bits).
constexpr std::uint16_t kStored = 0;
constexpr std::uint16_t kDeflated = 8;
constexpr std::uint64_t kMaxDeflateRatio = 1032;

// Opens `path` read-only for libzip; `bytes`, when given, receives its size.
// The descriptor is opened by featpool so that a missing file reads "No such
// file or directory" rather than libzip's "No such file", and so that an
// empty file, which libzip 1.7 calls "not a zip archive", is named for what
// it is.
zip_archive_ptr open_zip_archive(const std::string& path, std::uint64_t* bytes = nullptr) {
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
                            : "not an NPZ file: not a zip archive");
    }
    throw error(path, failure.what());
  } catch (...) {
    ::close(fd);  // the module could not be loaded
    throw;
  }
  return archive;
}

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
  explicit archive_pool(std::string path) : path_(std::move(path)) {}

  zip_archive_ptr take() {
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        auto archive = std::move(idle_.back());
        idle_.pop_back();
        return archive;
      }
    }
    return open_zip_archive(path_);
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
  std::mutex mutex_;
  std::vector<zip_archive_ptr> idle_;
};

// The NPY reader over a member, with the archive handle it reads from. Once
// the last element is handed out, the rest of the member is read to check
// its CRC, so corrupt data fails the read before the last block is used.
class npz_block_reader final : public block_reader {
 public:
  npz_block_reader(std::shared_ptr<archive_pool> pool, zip_archive_ptr archive,
                   zip_member_stream* stream, std::unique_ptr<block_reader> reader,
                   std::uint64_t nbytes)
      : pool_(std::move(pool)),
        archive_(std::move(archive)),
        stream_(stream),
        reader_(std::move(reader)),
        remaining_(nbytes) {}

  ~npz_block_reader() override {
    reader_.reset();  // closes the member before its archive serves another reader
    // A handle that reported an error goes: libzip gives no promise about
    // its state afterwards.
    if (!failed_) pool_->give_back(std::move(archive_));
  }
  npz_block_reader(const npz_block_reader&) = delete;
  npz_block_reader& operator=(const npz_block_reader&) = delete;

  std::span<const std::byte> next() override {
    failed_ = true;  // until this block is known good
    auto block = reader_->next();
    remaining_ -= std::min<std::uint64_t>(remaining_, block.size());
    if (remaining_ == 0 && !checked_) {
      stream_->finish();
      checked_ = true;
    }
    failed_ = false;
    return block;
  }

 private:
  std::shared_ptr<archive_pool> pool_;
  zip_archive_ptr archive_;               // declared before reader_: outlives the member
  zip_member_stream* stream_;             // owned by reader_
  std::unique_ptr<block_reader> reader_;  // the NPY reader, owning the member stream
  std::uint64_t remaining_;               // data bytes not yet handed out
  bool checked_ = false;                  // the CRC and the size were checked
  bool failed_ = false;                   // a read threw
};

// A listed member, to find it again and notice a changed archive on open().
struct npz_member {
  std::uint64_t index = 0;  // position in the zip directory
  std::string name;         // the member's name in the archive
  std::uint64_t size = 0;   // uncompressed size from the zip directory
  npy_header header;
};

bool same_header(const npy_header& a, const npy_header& b) {
  return a.major_version == b.major_version && a.descr == b.descr &&
         a.fortran_order == b.fortran_order && a.shape == b.shape && a.data_offset == b.data_offset;
}

class npz_file_source final : public tensor_source {
 public:
  explicit npz_file_source(std::string path)
      : path_(std::move(path)), pool_(std::make_shared<archive_pool>(path_)) {
    std::uint64_t archive_bytes = 0;
    auto archive = open_zip_archive(path_, &archive_bytes);
    std::uint64_t count = archive->entry_count();
    // Tensor name to the member that gave it, to find duplicates.
    std::unordered_map<std::string, std::string> seen;
    for (std::uint64_t index = 0; index < count; ++index) {
      zip_entry entry;
      try {
        entry = archive->entry(index);
      } catch (const zip_failure& failure) {
        throw error(path_, failure.what());
      }
      std::string member = entry.name.value_or("");
      if (member.ends_with('/')) continue;  // a directory entry
      if (has_control_character(member)) {
        throw error(path_, fmt::format("member name {:?} contains a control character", member));
      }
      bool npy_suffix = member.ends_with(".npy");
      std::string name = npy_suffix ? member.substr(0, member.size() - 4) : member;
      check_readable(entry, name);
      check_sizes(entry, name, archive_bytes);
      if (!npy_suffix && !holds_npy_data(*archive, index, entry.size, name)) continue;
      if (auto [it, inserted] = seen.emplace(name, member); !inserted) {
        throw error(path_, name,
                    it->second == member
                        ? fmt::format("the archive holds two members named '{}'", member)
                        : fmt::format("members '{}' and '{}' are both named '{}'", it->second,
                                      member, name));
      }
      if (entry.size == 0) throw error(path_, name, "empty member");

      zip_member_stream stream(*archive, index, entry.size, path_, name);
      auto header = read_npy_header(stream, path_, name);
      infos_.push_back(describe_npy(header, path_, name, file_format::npz, entry.size));
      members_.push_back(npz_member{index, std::move(member), entry.size, std::move(header)});
    }
    pool_->give_back(std::move(archive));  // the first reader needs no second parse
  }

  const std::vector<tensor_info>& tensors() const override { return infos_; }

  std::unique_ptr<block_reader> open(std::size_t index) override {
    const tensor_info& info = infos_.at(index);
    const npz_member& member = members_.at(index);
    auto archive = pool_->take();
    // A handle opened now may see another file than the listing did.
    std::optional<zip_entry> entry;
    try {
      entry = archive->entry(member.index);
    } catch (const zip_failure&) {
      // Not there any more: the archive changed.
    }
    if (!entry || !entry->name || *entry->name != member.name || entry->size != member.size) {
      throw error(path_, info.name, "the archive changed since it was listed");
    }
    auto stream =
        std::make_unique<zip_member_stream>(*archive, member.index, member.size, path_, info.name);
    // Reading the header again leaves the stream at the first data byte.
    if (!same_header(read_npy_header(*stream, path_, info.name), member.header)) {
      throw error(path_, info.name, "the archive changed since it was listed");
    }
    zip_member_stream* raw = stream.get();
    auto reader = make_npy_reader(std::move(stream), info);
    return std::make_unique<npz_block_reader>(pool_, std::move(archive), raw, std::move(reader),
                                              info.nbytes);
  }

 private:
  // Refuses, up front and in plain words, members libzip could not read.
  void check_readable(const zip_entry& entry, const std::string& name) const {
    if (entry.encrypted) throw error(path_, name, "encrypted members are not supported");
    if (entry.unsupported_compression) {
      throw error(
          path_, name,
          fmt::format("compression method {} is not supported", *entry.unsupported_compression));
    }
  }

  // The zip directory's sizes against what the archive can hold (see the
  // top of this file). Other compression methods are held to the first rule
  // only: bzip2 can shrink data a million times.
  void check_sizes(const zip_entry& entry, const std::string& name,
                   std::uint64_t archive_bytes) const {
    if (entry.compressed_size > archive_bytes) {
      throw error(path_, name,
                  fmt::format("damaged zip archive: the zip directory says the member takes {} "
                              "bytes, the archive has {}",
                              entry.compressed_size, archive_bytes));
    }
    std::uint64_t ratio = entry.method == kStored     ? 1
                          : entry.method == kDeflated ? kMaxDeflateRatio
                                                      : 0;
    if (ratio != 0 && entry.size / ratio > entry.compressed_size) {
      throw error(path_, name,
                  fmt::format("damaged zip archive: the zip directory says the member holds {} "
                              "bytes, more than its {} {} bytes can",
                              entry.size, entry.compressed_size,
                              entry.method == kStored ? "stored" : "deflated"));
    }
  }

  // Whether a member not named ".npy" starts with NPY's magic.
  bool holds_npy_data(zip_reader& archive, std::uint64_t index, std::uint64_t size,
                      const std::string& name) const {
    static constexpr std::array<unsigned char, 6> kMagic{0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (size < kMagic.size()) return false;
    zip_member_stream stream(archive, index, size, path_, name);
    std::array<std::byte, kMagic.size()> magic{};
    stream.read(magic);
    return std::memcmp(magic.data(), kMagic.data(), kMagic.size()) == 0;
  }

  std::string path_;
  std::vector<tensor_info> infos_;
  std::vector<npz_member> members_;  // parallel to infos_
  std::shared_ptr<archive_pool> pool_;
};

}  // namespace

std::unique_ptr<tensor_source> open_npz_file(const std::string& path) {
  return std::make_unique<npz_file_source>(path);
}

}  // namespace featpool
