#pragma once
// SIGINT and SIGTERM only set a flag: the pooling loop checks it between
// blocks and unwinds, so temporary files are removed by their owners and
// the report so far is still written.

namespace featpool {

void install_interrupt_handlers();

// The signal that arrived (SIGINT or SIGTERM), or 0.
int pending_interrupt() noexcept;

// Thrown by the loop that noticed a pending interrupt.
struct interrupted {
  int signal;
};

// Throws interrupted when a signal is pending.
void check_interrupt();

}  // namespace featpool
