#pragma once
// The progress line of a long batch: one line on a terminal's stderr,
// redrawn in place, with tensors done, bytes read, rate and time left.
// Shown only after the work has run about a second, so quick runs print
// nothing; never used when stderr is not a terminal or with -q.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <iosfwd>
#include <mutex>
#include <string>
#include <thread>

namespace featpool {

struct progress_snapshot {
  std::uint64_t tensors_done = 0;
  std::uint64_t tensors_total = 0;
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_total = 0;
  double seconds = 0;  // since the work started
};

// "120/10000 tensors · 1.2 GiB of 9.8 GiB · 410.0 MiB/s · 0:21 left"
std::string progress_text(const progress_snapshot& now);

// The line as drawn: "featpool: " and the text, cut to fewer than `columns`
// columns, since a line that wraps could no longer be erased in place.
std::string progress_display(const progress_snapshot& now, std::size_t columns);

class progress_line {
 public:
  progress_line(std::ostream& terminal, std::size_t columns, std::uint64_t tensors_total,
                std::uint64_t bytes_total);
  // Stops redrawing and erases the line, leaving the terminal as it was.
  ~progress_line();
  progress_line(const progress_line&) = delete;
  progress_line& operator=(const progress_line&) = delete;

  // Safe to call from any thread.
  void add_bytes(std::uint64_t bytes) { bytes_read_.fetch_add(bytes, std::memory_order_relaxed); }
  void add_tensors(std::uint64_t tensors) {
    tensors_done_.fetch_add(tensors, std::memory_order_relaxed);
  }
  // Prints a whole line (an error) above the progress line.
  void print(const std::string& line);

 private:
  void redraw_until_stopped();
  void erase();  // with mutex_ held

  std::ostream& terminal_;
  const std::size_t columns_;
  const std::uint64_t tensors_total_;
  const std::uint64_t bytes_total_;
  const std::chrono::steady_clock::time_point start_;
  std::atomic<std::uint64_t> bytes_read_{0};
  std::atomic<std::uint64_t> tensors_done_{0};
  std::mutex mutex_;  // guards the terminal and the fields below
  std::condition_variable wake_;
  bool stopping_ = false;
  bool shown_ = false;
  std::thread redrawer_;
};

}  // namespace featpool
