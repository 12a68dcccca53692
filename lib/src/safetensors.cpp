// Reading a .safetensors file: the header is read and checked whole
// (safetensors_header.cpp), then each tensor is read in place, with pread
// by as many workers as pooling has, like an NPY file's data.

#include "featpool/safetensors.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "featpool/byte_stream.hpp"
#include "featpool/error.hpp"
#include "featpool/npy.hpp"

namespace featpool {
namespace {

// The length field before the header.
constexpr std::size_t kLengthBytes = 8;

tensor_info describe(const safetensors_entry& entry, const std::string& file) {
  tensor_info info;
  info.file = file;
  info.name = entry.name;
  info.format = file_format::safetensors;
  info.shape = entry.shape;
  auto type = safetensors_dtype_of(entry.dtype_name);
  info.type = type.type;
  info.dtype_string = type.type ? std::string(dtype_name(*type.type)) : entry.dtype_name;
  info.stored_byte_order = type.size > 1 ? byte_order::little : byte_order::none;
  info.nbytes = entry.end - entry.begin;
  info.data_offsets = {{entry.begin, entry.end}};
  return info;
}

class safetensors_source final : public tensor_source {
 public:
  explicit safetensors_source(std::string path) : path_(std::move(path)) {
    fd_stream file(open_file(), path_, true);
    if (!file.size()) throw error(path_, "not a regular file");
    const std::uint64_t size = *file.size();
    std::array<std::byte, kLengthBytes> length_field{};
    if (file.read(length_field) < kLengthBytes) {
      throw error(path_,
                  fmt::format("truncated header: the {}-byte length is cut off (file has {})",
                              kLengthBytes, size));
    }
    std::uint64_t length = 0;
    for (std::size_t i = kLengthBytes; i-- > 0;) {
      length = length << 8 | std::to_integer<std::uint64_t>(length_field[i]);
    }
    if (length > kMaxSafetensorsHeaderBytes) {
      throw error(path_, fmt::format("header is {} bytes, over the format's limit of {}", length,
                                     kMaxSafetensorsHeaderBytes));
    }
    if (length > size - kLengthBytes) {
      throw error(path_, fmt::format("truncated header: expected {} bytes, file has {}", length,
                                     size - kLengthBytes));
    }
    std::string text(length, '\0');
    if (file.read(std::as_writable_bytes(std::span(text))) < length) {
      throw error(path_, "truncated header: the file shrank while it was read");
    }
    const std::uint64_t data_offset = kLengthBytes + length;
    auto header = parse_safetensors_header(text, size - data_offset, path_);
    for (const auto& entry : header.entries) {
      infos_.push_back(describe(entry, path_));
      file_offsets_.push_back(data_offset + entry.begin);
    }
    metadata_ = std::move(header.metadata);
  }

  const std::vector<tensor_info>& tensors() const override { return infos_; }

  std::unique_ptr<block_reader> open(std::size_t index) override {
    const tensor_info& info = infos_.at(index);
    const std::uint64_t offset = file_offsets_.at(index);
    int fd = open_file();
    if (::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) {
      int saved = errno;
      ::close(fd);
      throw error(path_, info.name, std::strerror(saved));
    }
    auto in = std::make_unique<fd_stream>(fd, path_, true);
    bool swap =
        info.stored_byte_order == byte_order::little && native_byte_order() != byte_order::little;
    return make_npy_reader(std::move(in), info, raw_extent{fd, offset, swap});
  }

  // The file's __metadata__, shown with every tensor's attributes, except
  // the provenance of featpool's other outputs in the file.
  nlohmann::json attributes(std::size_t index) override {
    nlohmann::json shown = nlohmann::json::object();
    if (metadata_.is_null()) return shown;
    const std::string own = provenance_key(infos_.at(index).name);
    for (const auto& [key, value] : metadata_.items()) {
      if (key == own || !key.starts_with(provenance_key(""))) shown[key] = value;
    }
    return shown;
  }

 private:
  int open_file() const {
    // O_NONBLOCK: a FIFO named .safetensors must not wait for a writer.
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) throw error(path_, std::strerror(errno));
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
  }

  std::string path_;
  std::vector<tensor_info> infos_;
  std::vector<std::uint64_t> file_offsets_;  // of each tensor's first byte
  nlohmann::json metadata_;
};

}  // namespace

std::unique_ptr<tensor_source> open_safetensors_file(const std::string& path) {
  return std::make_unique<safetensors_source>(path);
}

}  // namespace featpool
