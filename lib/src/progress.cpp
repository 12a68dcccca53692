#include "featpool/progress.hpp"

#include <array>
#include <ostream>

#include <fmt/format.h>

namespace featpool {
namespace {

// Work shorter than this shows no progress at all.
constexpr std::chrono::milliseconds kQuietStart{1000};
constexpr std::chrono::milliseconds kRedrawEvery{250};

// Erases the current terminal line: carriage return, then clear to its end.
constexpr std::string_view kEraseLine = "\r\x1b[K";

std::string human_bytes(double bytes) {
  constexpr std::array<const char*, 5> kUnits{"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t unit = 0;
  // 1048575 bytes reads 1.0 MiB, not 1024.0 KiB, once rounded to a tenth.
  while (bytes >= 1023.95 && unit + 1 < kUnits.size()) {
    bytes /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, kUnits[unit]);
}

std::string clock_time(double seconds) {
  auto whole = static_cast<std::uint64_t>(seconds + 0.5);
  if (whole >= 3600)
    return fmt::format("{}:{:02}:{:02}", whole / 3600, whole / 60 % 60, whole % 60);
  return fmt::format("{}:{:02}", whole / 60, whole % 60);
}

}  // namespace

std::string progress_text(const progress_snapshot& now) {
  std::string text = fmt::format("{}/{} tensors · {} of {}", now.tensors_done, now.tensors_total,
                                 human_bytes(static_cast<double>(now.bytes_read)),
                                 human_bytes(static_cast<double>(now.bytes_total)));
  if (now.seconds <= 0 || now.bytes_read == 0) return text;
  double rate = static_cast<double>(now.bytes_read) / now.seconds;
  text += fmt::format(" · {}/s", human_bytes(rate));
  if (now.bytes_total >= now.bytes_read) {
    text += fmt::format(" · {} left",
                        clock_time(static_cast<double>(now.bytes_total - now.bytes_read) / rate));
  }
  return text;
}

std::string progress_display(const progress_snapshot& now, std::size_t columns) {
  std::string line = "featpool: " + progress_text(now);
  // Count UTF-8 code points (the text is ASCII apart from '·').
  std::size_t shown = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    bool starts_character = (static_cast<unsigned char>(line[i]) & 0xC0) != 0x80;
    if (starts_character && ++shown >= columns) return line.substr(0, i);
  }
  return line;
}

progress_line::progress_line(std::ostream& terminal, std::size_t columns,
                             std::uint64_t tensors_total, std::uint64_t bytes_total)
    : terminal_(terminal),
      columns_(columns),
      tensors_total_(tensors_total),
      bytes_total_(bytes_total),
      start_(std::chrono::steady_clock::now()),
      redrawer_([this] { redraw_until_stopped(); }) {}

progress_line::~progress_line() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  redrawer_.join();
  std::lock_guard lock(mutex_);
  erase();
}

void progress_line::print(const std::string& line) {
  std::lock_guard lock(mutex_);
  erase();
  terminal_ << line << '\n';
  terminal_.flush();
}

void progress_line::erase() {
  if (!shown_) return;
  terminal_ << kEraseLine;
  terminal_.flush();
  shown_ = false;
}

void progress_line::redraw_until_stopped() {
  std::unique_lock lock(mutex_);
  if (wake_.wait_for(lock, kQuietStart, [this] { return stopping_; })) return;
  do {
    std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start_;
    progress_snapshot now{tensors_done_.load(std::memory_order_relaxed), tensors_total_,
                          bytes_read_.load(std::memory_order_relaxed), bytes_total_,
                          elapsed.count()};
    terminal_ << kEraseLine << progress_display(now, columns_);
    terminal_.flush();
    shown_ = true;
  } while (!wake_.wait_for(lock, kRedrawEvery, [this] { return stopping_; }));
}

}  // namespace featpool
