#pragma once
// Helpers the tests share: a temporary folder that cleans up after itself,
// writing bytes to files in it, NPY files with hand-written headers, and a
// block reader over a vector.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "featpool/source.hpp"

namespace featpool::testing {

class temp_dir {
 public:
  temp_dir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "featpool-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  std::string file(std::string_view name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

// An NPY file with a hand-written header dict, in format version 1.0 unless
// told otherwise, followed by `data`.
inline std::string npy_bytes(std::string_view dict, std::string_view data = {}, int version = 1) {
  std::string header(dict);
  header += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(version);
  out += '\0';
  std::size_t length_bytes = version == 1 ? 2 : 4;
  for (std::size_t i = 0; i < length_bytes; ++i) {
    out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  }
  return out + header + std::string(data);
}

// Hands out a vector's elements in blocks of a fixed count, so that work
// across block boundaries is exercised; counts the blocks it handed out.
template <class T>
class vector_reader final : public block_reader {
 public:
  vector_reader(std::vector<T> values, std::size_t per_block)
      : values_(std::move(values)), per_block_(per_block) {}
  std::span<const std::byte> next() override {
    std::size_t n = std::min(per_block_, values_.size() - offset_);
    auto block = std::as_bytes(std::span(values_.data() + offset_, n));
    offset_ += n;
    if (n) ++blocks_read_;
    return block;
  }
  std::size_t blocks_read() const { return blocks_read_; }

 private:
  std::vector<T> values_;
  std::size_t per_block_;
  std::size_t offset_ = 0;
  std::size_t blocks_read_ = 0;
};

}  // namespace featpool::testing
