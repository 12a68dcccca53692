// PyTorch's torch.save files, the zip format of torch >= 1.6. The archive's
// records sit in one folder, named after the file at save time ("archive"
// in newer torch):
//
//   <folder>/data.pkl     the object, pickled (protocol 2); tensors in it are
//                         torch._utils._rebuild_tensor_v2 calls whose storage
//                         is a persistent id naming a record
//   <folder>/data/<key>   a storage's elements, uncompressed, as many as the
//                         persistent id says
//   <folder>/byteorder    "little" or "big" (torch >= 2.1; before, little)
//   <folder>/version      the format version; other records are ignored
//
// Accepted: tensors of bool, integer, half, bfloat16, float and double
// storages, alone or in dicts, OrderedDicts, lists and tuples (nested), and
// nn.Parameters; other values in those containers (numbers, strings, None)
// are skipped. A tensor is any view of its storage: an offset and strides,
// several tensors sharing one storage, strides of 0.
//
// Rejected, naming the file (and the tensor): anything torch.save would not
// write for those (any other pickle global, opcode or call: see
// torch_pickle.cpp), a storage record that is missing or shorter than its
// elements, a view reaching past its storage, sizes whose product overflows,
// and records whose sizes in the zip directory the archive cannot hold. All
// of it is checked while listing, before anything is read or set aside.
// TorchScript archives (torch.jit.save) hold other globals and are refused
// by the same rule; the legacy formats of torch < 1.6 are refused with a
// hint on re-saving them (discover.cpp recognizes them).

#include "featpool/torch_pt.hpp"

#include <array>
#include <cstring>
#include <filesystem>
#include <optional>
#include <unordered_map>

#include "storage_view_reader.hpp"
#include "torch_pickle.hpp"
#include "zip_members.hpp"
#include <fmt/format.h>

#include "featpool/error.hpp"
#include "featpool/zip.hpp"

namespace featpool {
namespace {

using namespace detail;

// data.pkl is read whole; a checkpoint of 100 000 tensors pickles to a few
// MiB, so a larger one is no file torch.save wrote.
constexpr std::uint64_t kMaxPickleBytes = std::uint64_t{64} << 20;

// A zip directory entry and its position in the directory.
struct zip_entry_at {
  std::uint64_t index = 0;
  zip_entry entry;
};

struct storage_record {
  std::uint64_t index = 0;  // in the zip directory
  std::string member;       // "<folder>/data/<key>"
  std::uint64_t size = 0;   // bytes, as the zip directory says
};

// One listed tensor's way to its elements.
struct tensor_place {
  std::size_t storage = 0;  // into torch_source::records_
  storage_view view;
};

class torch_source final : public tensor_source {
 public:
  explicit torch_source(std::string path)
      : path_(std::move(path)), pool_(std::make_shared<archive_pool>(path_, "PyTorch")) {
    std::uint64_t archive_bytes = 0;
    auto archive = open_zip_archive(path_, "PyTorch", &archive_bytes);
    auto members = list_members(*archive, archive_bytes);
    std::string folder = find_folder(members);
    stored_order_ = stored_byte_order(*archive, members, folder);
    auto contents = read_torch_pickle(read_pickle(*archive, members, folder), path_);

    std::string stem = std::filesystem::path(path_).stem().string();
    std::vector<std::optional<std::size_t>> record_of(contents.storages.size());
    for (auto& tensor : contents.tensors) {
      const auto& storage = contents.storages[tensor.storage];
      std::string name = tensor.name.empty() ? stem : tensor.name;
      if (!record_of[tensor.storage]) {
        record_of[tensor.storage] = add_record(members, folder, storage, name);
      }
      add_tensor(std::move(name), tensor, storage, *record_of[tensor.storage]);
    }
    pool_->give_back(std::move(archive));
  }

  const std::vector<tensor_info>& tensors() const override { return infos_; }

  std::unique_ptr<block_reader> open(std::size_t index) override {
    const tensor_info& info = infos_.at(index);
    const tensor_place& place = places_.at(index);
    const storage_record& record = records_.at(place.storage);
    auto archive = pool_->take();
    // A handle opened now may see another file than the listing did.
    std::optional<zip_entry> entry;
    try {
      entry = archive->entry(record.index);
    } catch (const zip_failure&) {
      // Not there any more: the archive changed.
    }
    if (!entry || entry->name != record.member || entry->size != record.size) {
      throw error(path_, info.name, "the archive changed since it was listed");
    }
    auto open_storage = [handle = archive.get(), record, file = path_, tensor = info.name] {
      return std::unique_ptr<byte_stream>(
          std::make_unique<zip_member_stream>(*handle, record.index, record.size, file, tensor));
    };
    auto reader = make_storage_view_reader(open_storage, place.view, path_, info.name);
    return std::make_unique<pooled_archive_reader>(pool_, std::move(archive), std::move(reader));
  }

  nlohmann::json attributes(std::size_t index) override {
    const auto& place = places_.at(index);
    return nlohmann::json{{"storage", storage_keys_.at(place.storage)},
                          {"storage_offset", place.view.offset},
                          {"stride", place.view.strides}};
  }

 private:
  // Every member by name, each checked as NPZ members are.
  std::unordered_map<std::string, zip_entry_at> list_members(zip_reader& archive,
                                                             std::uint64_t archive_bytes) {
    std::unordered_map<std::string, zip_entry_at> members;
    for (std::uint64_t index = 0; index < archive.entry_count(); ++index) {
      zip_entry entry;
      try {
        entry = archive.entry(index);
      } catch (const zip_failure& failure) {
        throw error(path_, failure.what());
      }
      if (!entry.name || entry.name->ends_with('/')) continue;
      check_member_readable(entry, path_, {});
      check_member_sizes(entry, path_, {}, archive_bytes);
      std::string name = *entry.name;
      members.emplace(std::move(name), zip_entry_at{index, std::move(entry)});
    }
    return members;
  }

  // The folder holding data.pkl: the archive's only top-level folder.
  std::string find_folder(const std::unordered_map<std::string, zip_entry_at>& members) const {
    std::optional<std::string> folder;
    for (const auto& [name, entry] : members) {
      auto slash = name.find('/');
      if (slash == std::string::npos || name.substr(slash) != "/data.pkl") continue;
      if (folder) throw error(path_, "not a torch.save file: it holds two data.pkl records");
      folder = name.substr(0, slash);
    }
    if (!folder) throw error(path_, "not a torch.save file: the zip archive holds no data.pkl");
    return *folder;
  }

  byte_order stored_byte_order(zip_reader& archive,
                               const std::unordered_map<std::string, zip_entry_at>& members,
                               const std::string& folder) const {
    auto it = members.find(folder + "/byteorder");
    if (it == members.end()) return byte_order::little;  // written since torch 2.1
    std::array<char, 8> text{};
    if (it->second.entry.size > text.size()) {
      throw error(path_, "the byteorder record is neither 'little' nor 'big'");
    }
    auto size = static_cast<std::size_t>(it->second.entry.size);
    zip_member_stream stream(archive, it->second.index, size, path_, {});
    stream.read(std::as_writable_bytes(std::span(text)).first(size));
    std::string_view order(text.data(), size);
    if (order != "little" && order != "big") {
      throw error(path_, "the byteorder record is neither 'little' nor 'big'");
    }
    return order == "big" ? byte_order::big : byte_order::little;
  }

  std::vector<std::byte> read_pickle(zip_reader& archive,
                                     const std::unordered_map<std::string, zip_entry_at>& members,
                                     const std::string& folder) const {
    const auto& [index, entry] = members.at(folder + "/data.pkl");
    if (entry.size > kMaxPickleBytes) {
      throw error(path_, fmt::format("data.pkl is {} bytes, more than the {} a torch.save file "
                                     "holds",
                                     entry.size, kMaxPickleBytes));
    }
    std::vector<std::byte> bytes(static_cast<std::size_t>(entry.size));
    zip_member_stream stream(archive, index, entry.size, path_, {});
    stream.read(bytes);
    stream.finish();  // the CRC
    return bytes;
  }

  std::size_t add_record(const std::unordered_map<std::string, zip_entry_at>& members,
                         const std::string& folder, const torch_storage& storage,
                         const std::string& tensor) {
    std::string member = folder + "/data/" + storage.key;
    auto it = members.find(member);
    if (it == members.end()) {
      throw error(path_, tensor,
                  fmt::format("its storage '{}' is missing: the archive has no record {}",
                              storage.key, member));
    }
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(storage.numel, dtype_size(storage.type), &bytes) ||
        it->second.entry.size < bytes) {
      throw error(
          path_, tensor,
          fmt::format("its storage '{}' holds {} bytes, fewer than its {} elements of "
                      "{} need",
                      storage.key, it->second.entry.size, storage.numel, dtype_name(storage.type)));
    }
    records_.push_back(storage_record{it->second.index, member, it->second.entry.size});
    storage_keys_.push_back(storage.key);
    return records_.size() - 1;
  }

  void add_tensor(std::string name, const torch_tensor& tensor, const torch_storage& storage,
                  std::size_t record) {
    std::uint64_t count = 1;
    // The last element's index in the storage: offset + sum of (size - 1) * stride.
    std::uint64_t last = tensor.offset;
    bool overflow = false;
    for (std::size_t d = 0; d < tensor.shape.size(); ++d) {
      overflow |= __builtin_mul_overflow(count, tensor.shape[d], &count);
      std::uint64_t reach = 0;
      if (tensor.shape[d] > 0) {
        overflow |= __builtin_mul_overflow(tensor.shape[d] - 1, tensor.strides[d], &reach);
        overflow |= __builtin_add_overflow(last, reach, &last);
      }
    }
    std::uint64_t nbytes = 0;
    overflow |= __builtin_mul_overflow(count, dtype_size(storage.type), &nbytes);
    if (overflow)
      throw error(path_, name, "shape and strides are too large: they overflow 64 bits");
    if (count > 0 && last >= storage.numel) {
      throw error(path_, name,
                  fmt::format("the view reaches element {} of its storage '{}', which has {}", last,
                              storage.key, storage.numel));
    }
    for (char c : name) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        throw error(path_, fmt::format("tensor name {:?} contains a control character", name));
      }
    }
    tensor_info info;
    info.file = path_;
    info.name = name;
    info.format = file_format::torch;
    info.shape = tensor.shape;
    info.type = storage.type;
    info.dtype_string = std::string(dtype_name(storage.type));
    std::size_t item = dtype_size(storage.type);
    info.stored_byte_order = item == 1 ? byte_order::none : stored_order_;
    info.nbytes = nbytes;
    infos_.push_back(std::move(info));
    places_.push_back(
        tensor_place{record, storage_view{tensor.offset, tensor.shape, tensor.strides, item,
                                          stored_order_ != native_byte_order()}});
  }

  std::string path_;
  std::shared_ptr<archive_pool> pool_;
  byte_order stored_order_ = byte_order::little;  // of every storage
  std::vector<tensor_info> infos_;
  std::vector<tensor_place> places_;       // parallel to infos_
  std::vector<storage_record> records_;    // the storages the tensors use
  std::vector<std::string> storage_keys_;  // parallel to records_
};

}  // namespace

std::unique_ptr<tensor_source> open_torch_file(const std::string& path) {
  return std::make_unique<torch_source>(path);
}

bool starts_like_legacy_torch(std::span<const std::byte> first_bytes) {
  // PROTO n, then LONG1 of 10 bytes: torch's magic number 0x1950a86a20f9469cfc6c.
  static constexpr std::array<unsigned char, 12> kMagic{0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                                        0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  return first_bytes.size() >= 2 + kMagic.size() && first_bytes[0] == std::byte{0x80} &&
         std::memcmp(first_bytes.data() + 2, kMagic.data(), kMagic.size()) == 0;
}

}  // namespace featpool
