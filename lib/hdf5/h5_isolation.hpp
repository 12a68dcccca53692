#pragma once
// Runs libhdf5 work in a helper process.
//
// Debian's libhdf5 1.10.8 crashes, and loops forever, on some corrupt files
// (tests/fuzz/README.md), deep in code that every listing of a group goes
// through. featpool cannot check the file for everything the library trips
// on, but it can keep the library's faults out of its own process: the work
// runs in a fork()ed helper that answers requests through a socket, and a
// helper that dies becomes one featpool::error naming the file, while the
// rest of a batch goes on with a new helper.
//
// One helper serves every request, one at a time: forking for each file
// would cost more than listing it (the page faults of copy-on-write).

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace featpool::detail {

using isolated_bytes = std::vector<std::uint8_t>;

// The work a helper does: a request's bytes in, the answer's bytes out. A
// featpool::error it throws reaches the caller unchanged.
using helper_handler = isolated_bytes (*)(const isolated_bytes& request);

class helper_process {
 public:
  explicit helper_process(helper_handler handler) noexcept : handler_(handler) {}
  helper_process(const helper_process&) = delete;
  helper_process& operator=(const helper_process&) = delete;
  // Closes the socket, which ends the helper; does not wait for it.
  ~helper_process();

  // Has the helper run the handler on `request` and returns its answer,
  // starting a helper first when none is running. When the helper dies
  // instead, the error names `file`, what was being done (`doing`:
  // "listing the datasets") and how it ended: a crash (its signal) or a CPU
  // time over `cpu_seconds`, when given (a loop that never ends); SIGINT
  // and SIGTERM end featpool too, or are thrown as featpool::interrupted
  // when featpool handles them.
  isolated_bytes call(const isolated_bytes& request, const std::string& file,
                      std::string_view doing, std::optional<rlim_t> cpu_seconds);

 private:
  void start(const std::string& file, std::string_view doing);
  // Waits for the dead helper and throws what its end means.
  [[noreturn]] void throw_helper_death(const std::string& file, std::string_view doing,
                                       std::optional<rlim_t> cpu_seconds);

  helper_handler handler_;
  std::mutex mutex_;  // one request at a time
  pid_t pid_ = -1;
  int socket_ = -1;
};

}  // namespace featpool::detail
