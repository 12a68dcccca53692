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

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <utility>

#include "zip_members.hpp"
#include <fmt/format.h>

#include "featpool/byte_stream.hpp"
#include "featpool/error.hpp"
#include "featpool/npy.hpp"
#include "featpool/zip.hpp"

namespace featpool {
namespace {

using namespace detail;

// The NPY reader over a member. Once the last element is handed out, the
// rest of the member is read to check its CRC, so corrupt data fails the
// read before the last block is used.
class crc_checked_reader final : public block_reader {
 public:
  crc_checked_reader(zip_member_stream* stream, std::unique_ptr<block_reader> reader,
                     std::uint64_t nbytes)
      : stream_(stream), reader_(std::move(reader)), remaining_(nbytes) {}

  std::span<const std::byte> next() override {
    auto block = reader_->next();
    remaining_ -= std::min<std::uint64_t>(remaining_, block.size());
    if (remaining_ == 0 && !checked_) {
      stream_->finish();
      checked_ = true;
    }
    return block;
  }

 private:
  zip_member_stream* stream_;             // owned by reader_
  std::unique_ptr<block_reader> reader_;  // the NPY reader, owning the member stream
  std::uint64_t remaining_;               // data bytes not yet handed out
  bool checked_ = false;                  // the CRC and the size were checked
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
      : path_(std::move(path)), pool_(std::make_shared<archive_pool>(path_, "NPZ")) {
    std::uint64_t archive_bytes = 0;
    auto archive = open_zip_archive(path_, "NPZ", &archive_bytes);
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
      check_member_readable(entry, path_, name);
      check_member_sizes(entry, path_, name, archive_bytes);
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
    return std::make_unique<pooled_archive_reader>(
        pool_, std::move(archive),
        std::make_unique<crc_checked_reader>(raw, std::move(reader), info.nbytes));
  }

 private:
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
