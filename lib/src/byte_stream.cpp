#include "featpool/byte_stream.hpp"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "featpool/error.hpp"
#include "featpool/interrupt.hpp"

namespace featpool {

fd_stream::fd_stream(int fd, std::string file, bool owned)
    : fd_(fd), file_(std::move(file)), owned_(owned) {
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) {
    size_ = static_cast<std::uint64_t>(st.st_size);
  }
}

fd_stream::~fd_stream() {
  if (owned_) ::close(fd_);
}

namespace {

// How often a read waiting on a pipe looks for Ctrl-C: the signal may land
// on another thread, so the waiting one cannot count on EINTR.
constexpr int kInterruptPollMilliseconds = 100;

void wait_until_readable(int fd) {
  pollfd waiting{fd, POLLIN, 0};
  while (::poll(&waiting, 1, kInterruptPollMilliseconds) <= 0) check_interrupt();
}

}  // namespace

std::size_t fd_stream::read(std::span<std::byte> buffer) {
  std::size_t done = 0;
  while (done < buffer.size()) {
    if (!size_) wait_until_readable(fd_);  // a pipe, a FIFO or a terminal
    ssize_t got = ::read(fd_, buffer.data() + done, buffer.size() - done);
    if (got == 0) break;
    if (got < 0) {
      if (errno == EINTR) {
        check_interrupt();  // Ctrl-C must not wait for a writer that never writes
        continue;
      }
      throw error(file_, std::string("read failed: ") + std::strerror(errno));
    }
    done += static_cast<std::size_t>(got);
  }
  offset_ += done;
  return done;
}

std::size_t pread_fully(int fd, std::span<std::byte> buffer, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < buffer.size()) {
    ssize_t got =
        ::pread(fd, buffer.data() + done, buffer.size() - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw std::system_error(errno, std::generic_category());
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

std::size_t memory_stream::read(std::span<std::byte> buffer) {
  std::size_t n = std::min(buffer.size(), bytes_.size() - offset_);
  std::copy_n(bytes_.data() + offset_, n, buffer.data());
  offset_ += n;
  return n;
}

}  // namespace featpool
