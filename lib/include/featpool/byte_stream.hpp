#pragma once
// A sequential source of bytes: a file, standard input, a FIFO, or a member
// of a zip archive. Parsers read through this, so they run the same on every
// kind of input and on in-memory bytes in tests.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace featpool {

class byte_stream {
 public:
  virtual ~byte_stream() = default;
  // Reads up to buffer.size() bytes; returns fewer only at the end of the
  // stream. Throws featpool::error on a read failure.
  virtual std::size_t read(std::span<std::byte> buffer) = 0;
  // Total bytes the stream holds when known up front (a regular file, a zip
  // member), so truncation is found before any data is read.
  virtual std::optional<std::uint64_t> size() const = 0;
};

// Reads an open file descriptor. Owns it when `owned`.
class fd_stream final : public byte_stream {
 public:
  fd_stream(int fd, std::string file, bool owned);
  ~fd_stream() override;
  fd_stream(const fd_stream&) = delete;
  fd_stream& operator=(const fd_stream&) = delete;

  std::size_t read(std::span<std::byte> buffer) override;
  std::optional<std::uint64_t> size() const override { return size_; }

  int fd() const noexcept { return fd_; }
  // Bytes read so far: where the next read starts in a file.
  std::uint64_t offset() const noexcept { return offset_; }

 private:
  int fd_;
  std::string file_;
  bool owned_;
  std::optional<std::uint64_t> size_;
  std::uint64_t offset_ = 0;
};

// Reads buffer.size() bytes of `fd` from `offset` with pread, retrying
// after signals; returns fewer only where the file ends. Throws
// std::system_error when a read fails.
std::size_t pread_fully(int fd, std::span<std::byte> buffer, std::uint64_t offset);

// Bytes in memory, for tests and for headers already read.
class memory_stream final : public byte_stream {
 public:
  explicit memory_stream(std::span<const std::byte> bytes) : bytes_(bytes) {}
  std::size_t read(std::span<std::byte> buffer) override;
  std::optional<std::uint64_t> size() const override { return bytes_.size(); }

 private:
  std::span<const std::byte> bytes_;
  std::size_t offset_ = 0;
};

}  // namespace featpool
