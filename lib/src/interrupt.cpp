#include "featpool/interrupt.hpp"

#include <csignal>

namespace featpool {
namespace {

// The one piece of global state: a signal handler can reach nothing else.
volatile std::sig_atomic_t pending_signal = 0;

extern "C" void remember_signal(int signal) { pending_signal = signal; }

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = remember_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int pending_interrupt() noexcept { return pending_signal; }

void check_interrupt() {
  if (int signal = pending_interrupt()) throw interrupted{signal};
}

}  // namespace featpool
