#pragma once
// The fuzzer's bytes as featpool meets files on the command line: a regular
// file, or a FIFO fed by another process. featpool opens both by path,
// sniffs and stats them exactly as it does a file or a FIFO argument.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <thread>

namespace featpool::fuzz {

// An input given to featpool by its path.
class fuzz_input {
 public:
  virtual ~fuzz_input() = default;
  virtual const std::string& path() const noexcept = 0;
};

// A regular file holding the bytes, in the temporary folder, its name ending
// in `suffix` (".h5" lets featpool hand HDF5 files with a user block to the
// library, as it does on the command line); removed when this is destroyed.
// Not a memfd: HDF5 refuses a file whose path does not resolve to a name.
class temp_file final : public fuzz_input {
 public:
  temp_file(std::span<const std::uint8_t> bytes, std::string_view suffix);
  ~temp_file() override;
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;

  const std::string& path() const noexcept override { return path_; }

 private:
  std::string path_;
};

// A pipe a thread writes the bytes into, then closes, as `zcat x.npy.gz`
// feeds `<(...)`. Whoever opens path(), under /proc/self/fd, reads them as
// a FIFO. Its readers must be closed before this is destroyed: the writer
// stops only when every byte was read or no reader is left.
class memory_pipe final : public fuzz_input {
 public:
  explicit memory_pipe(std::span<const std::uint8_t> bytes);
  ~memory_pipe() override;
  memory_pipe(const memory_pipe&) = delete;
  memory_pipe& operator=(const memory_pipe&) = delete;

  const std::string& path() const noexcept override { return path_; }

 private:
  int read_fd_ = -1;
  std::string path_;
  std::thread writer_;
};

}  // namespace featpool::fuzz
