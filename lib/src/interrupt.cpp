#include "featpool/interrupt.hpp"

#include <atomic>
#include <csignal>

namespace featpool {
namespace {

// The one piece of global state: a signal handler can reach nothing else.
// Atomic, not volatile sig_atomic_t: workers on other threads read it, and
// a lock-free atomic is safe to store from a handler.
std::atomic<int> pending_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void remember_signal(int signal) {
  pending_signal.store(signal, std::memory_order_relaxed);
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = remember_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int pending_interrupt() noexcept { return pending_signal.load(std::memory_order_relaxed); }

void check_interrupt() {
  if (int signal = pending_interrupt()) throw interrupted{signal};
}

}  // namespace featpool
