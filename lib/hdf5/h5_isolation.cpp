#include "h5_isolation.hpp"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <new>

#include "h5_handle.hpp"
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "featpool/error.hpp"
#include "featpool/interrupt.hpp"

namespace featpool::detail {
namespace {

// The frames on the socket: a request header and its bytes, then an answer
// header and its bytes.
struct request_header {
  std::uint64_t size = 0;
  std::uint64_t cpu_seconds = 0;  // 0: no limit
};

enum class answer_status : std::uint64_t {
  done,    // the handler's answer
  failed,  // a featpool::error as MessagePack {file, tensor, reason}
};

struct answer_header {
  answer_status status = answer_status::done;
  std::uint64_t size = 0;
};

bool send_exact(int socket, const void* data, std::size_t size) {
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  while (size > 0) {
    // MSG_NOSIGNAL: a peer that is gone is a failed send, not a SIGPIPE.
    ssize_t sent = ::send(socket, bytes, size, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    bytes += sent;
    size -= static_cast<std::size_t>(sent);
  }
  return true;
}

bool receive_exact(int socket, void* data, std::size_t size) {
  auto* bytes = static_cast<std::uint8_t*>(data);
  while (size > 0) {
    ssize_t got = ::recv(socket, bytes, size, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    bytes += got;
    size -= static_cast<std::size_t>(got);
  }
  return true;
}

// Grows the buffer as the bytes arrive, so that a wrong size cannot make
// it allocate more than was sent.
bool receive_bytes(int socket, std::uint64_t size, isolated_bytes& bytes) {
  constexpr std::uint64_t kPiece = std::uint64_t{1} << 20;
  bytes.clear();
  while (bytes.size() < size) {
    std::size_t start = bytes.size();
    bytes.resize(start + std::min(kPiece, size - start));
    if (!receive_exact(socket, bytes.data() + start, bytes.size() - start)) return false;
  }
  return true;
}

isolated_bytes encode_error(const std::string& file, const std::string& tensor,
                            const std::string& reason) {
  return nlohmann::json::to_msgpack({{"file", file}, {"tensor", tensor}, {"reason", reason}});
}

[[noreturn]] void throw_error_answer(const isolated_bytes& answer, const std::string& file) {
  auto message = nlohmann::json::from_msgpack(answer, true, false);
  if (!message.is_object()) throw error(file, "the helper process sent a malformed error");
  // Only a featpool::error names its file: any other failure is the
  // request's, and is told as about the file asked for.
  std::string named = message.value("file", "");
  throw error(named.empty() ? file : named, message.value("tensor", ""),
              message.value("reason", ""));
}

// Each request may use `cpu_seconds` more than the helper used so far.
void limit_cpu(std::uint64_t cpu_seconds, const rlimit& original) {
  rlimit limit = original;
  if (cpu_seconds > 0) {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    rlim_t used = static_cast<rlim_t>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + 1;
    limit.rlim_cur = std::min<rlim_t>(used + cpu_seconds, original.rlim_max);
  }
  ::setrlimit(RLIMIT_CPU, &limit);
}

answer_header answer_request(helper_handler handler, const isolated_bytes& request,
                             isolated_bytes& answer) {
  try {
    answer = handler(request);
    return {answer_status::done, answer.size()};
  } catch (const error& failure) {
    answer = encode_error(failure.file(), failure.tensor(), failure.reason());
  } catch (const std::bad_alloc&) {
    answer = encode_error({}, {}, "out of memory");
  } catch (const std::exception& failure) {
    // What main would print for it, had the work run in featpool itself.
    answer = encode_error({}, {}, failure.what());
  }
  return {answer_status::failed, answer.size()};
}

// The helper was ended by SIGINT or SIGTERM, mostly a Ctrl-C that reached
// featpool too. What featpool does with that signal decides: a handler
// (pool, merge) has noted it, and the run unwinds through
// featpool::interrupted; by default featpool ends as the helper did. A
// signal sent to the helper alone fails this request.
[[noreturn]] void stopped_by(int signal, const std::string& file, std::string_view doing) {
  struct sigaction current {};
  ::sigaction(signal, nullptr, &current);
  if (current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN) throw interrupted{signal};
  if (current.sa_handler == SIG_DFL) ::raise(signal);
  throw error(file,
              fmt::format("the process {} was stopped by SIG{}", doing, sigabbrev_np(signal)));
}

[[noreturn]] void serve(int socket, helper_handler handler, pid_t parent) {
  reset_h5_lock_in_child();
  // A parent that dies takes the helper with it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(0);
  // The helper's own faults must end it, with their signal, whatever
  // handler featpool (or a sanitizer) installed: the parent tells them.
  for (int signal : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGXCPU}) {
    std::signal(signal, SIG_DFL);
  }
  // Ctrl-C reaches the whole process group and ends the helper at once,
  // unless featpool ignores it (started in the background, under nohup).
  for (int signal : {SIGINT, SIGTERM}) {
    struct sigaction current {};
    ::sigaction(signal, nullptr, &current);
    if (current.sa_handler != SIG_IGN) std::signal(signal, SIG_DFL);
  }
  rlimit original{};
  ::getrlimit(RLIMIT_CPU, &original);
  for (;;) {
    request_header header;
    isolated_bytes request;
    // The end of the socket is the parent's goodbye. Not exit(): the helper
    // must not run the parent's atexit handlers or flush its buffers again.
    if (!receive_exact(socket, &header, sizeof header) ||
        !receive_bytes(socket, header.size, request)) {
      ::_exit(0);
    }
    limit_cpu(header.cpu_seconds, original);
    isolated_bytes answer;
    answer_header reply = answer_request(handler, request, answer);
    if (!send_exact(socket, &reply, sizeof reply) ||
        !send_exact(socket, answer.data(), answer.size())) {
      ::_exit(0);
    }
  }
}

}  // namespace

helper_process::~helper_process() {
  if (socket_ >= 0) ::close(socket_);
}

void helper_process::start(const std::string& file, std::string_view doing) {
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
    throw error(file,
                fmt::format("cannot start a process for {}: {}", doing, std::strerror(errno)));
  }
  pid_t parent = ::getpid();
  pid_t child = 0;
  {
    // The helper starts with this thread alone. No other thread may be
    // inside libhdf5 at that moment, or the helper would find the library's
    // state half-changed and its locks held by a thread it does not have.
    h5_lock lock;
    child = ::fork();
    if (child == 0) {
      ::close(ends[0]);
      serve(ends[1], handler_, parent);
    }
  }
  int fork_errno = errno;
  ::close(ends[1]);
  if (child < 0) {
    ::close(ends[0]);
    throw error(file,
                fmt::format("cannot start a process for {}: {}", doing, std::strerror(fork_errno)));
  }
  pid_ = child;
  socket_ = ends[0];
}

void helper_process::throw_helper_death(const std::string& file, std::string_view doing,
                                        std::optional<rlim_t> cpu_seconds) {
  ::close(socket_);
  // Already dead (its end of the socket closed with it) or, if the socket
  // failed otherwise, made so: either way waitpid cannot block.
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  socket_ = -1;

  if (WIFSIGNALED(status)) {
    int signal = WTERMSIG(status);
    if (signal == SIGINT || signal == SIGTERM) stopped_by(signal, file, doing);
    if (signal == SIGXCPU) {
      throw error(file, fmt::format("the HDF5 library ran for {} s of CPU {} without finishing: "
                                    "the file is corrupt",
                                    cpu_seconds.value_or(0), doing));
    }
    throw error(file, fmt::format("the HDF5 library crashed (SIG{}) {}: the file is corrupt",
                                  sigabbrev_np(signal), doing));
  }
  throw error(file,
              fmt::format("the process {} failed (exit status {})", doing, WEXITSTATUS(status)));
}

isolated_bytes helper_process::call(const isolated_bytes& request, const std::string& file,
                                    std::string_view doing, std::optional<rlim_t> cpu_seconds) {
  std::lock_guard guard(mutex_);
  // A helper that died between requests (Ctrl-C, or killed) is not this
  // file's fault: see how it ended, and start another.
  if (int status = 0; pid_ >= 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
    ::close(socket_);
    pid_ = -1;
    socket_ = -1;
    if (int signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        signal == SIGINT || signal == SIGTERM) {
      stopped_by(signal, file, doing);
    }
  }
  if (pid_ < 0) start(file, doing);

  request_header header{request.size(), cpu_seconds.value_or(0)};
  answer_header reply;
  isolated_bytes answer;
  if (!send_exact(socket_, &header, sizeof header) ||
      !send_exact(socket_, request.data(), request.size()) ||
      !receive_exact(socket_, &reply, sizeof reply) ||
      !receive_bytes(socket_, reply.size, answer)) {
    throw_helper_death(file, doing, cpu_seconds);
  }
  if (reply.status != answer_status::done) throw_error_answer(answer, file);
#ifdef FEATPOOL_FUZZ_COVERAGE
  // A fuzzer sees the code coverage of its own process only: doing the
  // same work here shows it the paths the helper took. It must give the
  // same answer.
  if (handler_(request) != answer) std::abort();
#endif
  return answer;
}

}  // namespace featpool::detail
