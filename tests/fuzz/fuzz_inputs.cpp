#include "fuzz_inputs.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

namespace featpool::fuzz {
namespace {

// The harness cannot go on without its input: say why and stop.
[[noreturn]] void die(const char* what) {
  std::cerr << "fuzz harness: " << what << ": " << std::strerror(errno) << '\n';
  std::abort();
}

// Writes the bytes, or as many as a pipe's reader took before it went away.
void write_all(int fd, std::span<const std::uint8_t> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t wrote = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0 && errno == EPIPE) return;
    if (wrote < 0) die("cannot write the input");
    done += static_cast<std::size_t>(wrote);
  }
}

// The pipe's writer. featpool stops reading a stream at its first error,
// which ends the writing (EPIPE) too.
void feed_pipe(int fd, std::span<const std::uint8_t> bytes) {
  // SIGPIPE would end the process; blocked here, a write to a pipe without
  // readers fails with EPIPE instead, in this thread alone.
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
  write_all(fd, bytes);
  ::close(fd);
}

}  // namespace

temp_file::temp_file(std::span<const std::uint8_t> bytes, std::string_view suffix) {
  path_ = (std::filesystem::temp_directory_path() / "featpool-fuzz-XXXXXX").string();
  path_ += suffix;
  int fd = ::mkstemps(path_.data(), static_cast<int>(suffix.size()));
  if (fd < 0) die("mkstemps");
  write_all(fd, bytes);
  ::close(fd);
}

temp_file::~temp_file() { ::unlink(path_.c_str()); }

memory_pipe::memory_pipe(std::span<const std::uint8_t> bytes) {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) die("pipe2");
  read_fd_ = ends[0];
  path_ = "/proc/self/fd/" + std::to_string(read_fd_);
  writer_ = std::thread(feed_pipe, ends[1], bytes);
}

memory_pipe::~memory_pipe() {
  ::close(read_fd_);
  writer_.join();
}

}  // namespace featpool::fuzz
