#include "featpool/progress.hpp"

#include <algorithm>
#include <chrono>
#include <sstream>
#include <string>
#include <thread>

#include <doctest/doctest.h>

namespace featpool {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t KiB = 1024;
constexpr std::uint64_t MiB = 1024 * KiB;
constexpr std::uint64_t GiB = 1024 * MiB;
constexpr std::uint64_t TiB = 1024 * GiB;

constexpr std::string_view kErase = "\r\x1b[K";

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// Terminal columns of UTF-8 text without control sequences: one per code
// point ("·" is two bytes, one column).
std::size_t columns(const std::string& text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

std::size_t occurrences(const std::string& text, std::string_view part) {
  std::size_t count = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++count;
  return count;
}

TEST_CASE("progress: text counts tensors and bytes") {
  auto text = progress_text({3, 10, 0, 2048, 0});
  CHECK(text == "3/10 tensors · 0 B of 2.0 KiB");
}

TEST_CASE("progress: bytes are shown in binary units") {
  CHECK(progress_text({0, 1, 0, 1023, 0}) == "0/1 tensors · 0 B of 1023 B");
  CHECK(progress_text({0, 1, 0, 1536, 0}) == "0/1 tensors · 0 B of 1.5 KiB");
  CHECK(progress_text({0, 1, 0, 5 * MiB / 2, 0}) == "0/1 tensors · 0 B of 2.5 MiB");
  CHECK(progress_text({0, 1, 0, 3 * GiB, 0}) == "0/1 tensors · 0 B of 3.0 GiB");
  CHECK(progress_text({0, 1, 0, 3 * TiB / 2, 0}) == "0/1 tensors · 0 B of 1.5 TiB");
  // TiB is the largest unit.
  CHECK(progress_text({0, 1, 0, 2048 * TiB, 0}) == "0/1 tensors · 0 B of 2048.0 TiB");
}

TEST_CASE("progress: a count just under a unit is shown in that unit") {
  CHECK(progress_text({0, 1, 0, MiB - 1, 0}) == "0/1 tensors · 0 B of 1.0 MiB");
  CHECK(progress_text({0, 1, 0, 1023, 0}) == "0/1 tensors · 0 B of 1023 B");
}

TEST_CASE("progress: no rate or time left at time zero or with nothing read") {
  // Nothing read yet, however long it has been.
  auto text = progress_text({0, 10, 0, 100 * MiB, 5.0});
  CHECK(text == "0/10 tensors · 0 B of 100.0 MiB");
  // Bytes read, but no time has passed.
  text = progress_text({1, 10, 10 * MiB, 100 * MiB, 0});
  CHECK(text == "1/10 tensors · 10.0 MiB of 100.0 MiB");
  CHECK_FALSE(contains(text, "/s"));
  CHECK_FALSE(contains(text, "left"));
}

TEST_CASE("progress: rate and time left once bytes were read") {
  // Half of 1000 MiB in 10 s: 50 MiB/s, and about 10 s to go.
  auto text = progress_text({5, 10, 500 * MiB, 1000 * MiB, 10.0});
  CHECK(text == "5/10 tensors · 500.0 MiB of 1000.0 MiB · 50.0 MiB/s · 0:10 left");
  // A quarter in 30 s: 90 s to go.
  text = progress_text({1, 4, 1 * GiB, 4 * GiB, 30.0});
  CHECK(contains(text, " · 1:30 left"));
  // Over an hour to go: hours, minutes and seconds.
  text = progress_text({1, 100, 1 * GiB, 101 * GiB, 60.0});
  CHECK(contains(text, "/s · 1:40:00 left"));
  // Everything read.
  text = progress_text({10, 10, 8 * MiB, 8 * MiB, 2.0});
  CHECK(text == "10/10 tensors · 8.0 MiB of 8.0 MiB · 4.0 MiB/s · 0:00 left");
}

TEST_CASE("progress: more read than expected shows a rate but no time left") {
  auto text = progress_text({2, 2, 12 * MiB, 10 * MiB, 4.0});
  CHECK(text == "2/2 tensors · 12.0 MiB of 10.0 MiB · 3.0 MiB/s");
}

// Large but realistic runs: a million tensors, 1.5 TiB.
const progress_snapshot kLargeRuns[] = {
    // 12% of 1.5 TiB at about 410 MiB/s: most of an hour left.
    {123456, 1000000, 189 * GiB, 3 * TiB / 2, 472.0},
    // The same at about 12 MiB/s: over a day left.
    {123456, 1000000, 189 * GiB, 3 * TiB / 2, 16000.0},
    // Nearly done, at over a GiB/s.
    {999999, 1000000, 1535 * GiB, 3 * TiB / 2, 1300.0},
};

TEST_CASE("progress: text fits in 80 columns for large runs") {
  for (const auto& now : kLargeRuns) {
    std::string text = progress_text(now);
    CAPTURE(text);
    CHECK(columns(text) < 80);
  }
}

TEST_CASE("progress: the drawn line fits in 80 columns for large runs") {
  // A line as wide as the terminal wraps, and "\r\x1b[K" then erases only
  // its last row, so every redraw would leave a stale row behind.
  for (const auto& now : kLargeRuns) {
    for (std::size_t width : {80u, 40u, 2u}) {
      std::string line = progress_display(now, width);
      CAPTURE(line);
      CHECK(columns(line) < width);
      CHECK(line.starts_with(std::string("featpool: ").substr(0, width - 1)));
    }
  }
}

TEST_CASE("progress: a line that lives well under a second prints nothing") {
  std::ostringstream terminal;
  {
    progress_line line(terminal, 80, 10, 100 * MiB);
    line.add_tensors(3);
    line.add_bytes(30 * MiB);
    std::this_thread::sleep_for(50ms);
  }
  CHECK(terminal.str().empty());
}

TEST_CASE("progress: print on a quiet line writes just the line") {
  std::ostringstream terminal;
  {
    progress_line line(terminal, 80, 10, 100 * MiB);
    line.print("featpool: error: a.npy: not an NPY file (bad magic)");
  }
  CHECK(terminal.str() == "featpool: error: a.npy: not an NPY file (bad magic)\n");
}

TEST_CASE("progress: a long run draws a line in place, prints above it and erases it") {
  std::ostringstream terminal;
  {
    progress_line line(terminal, 80, 10, 100 * MiB);
    line.add_tensors(3);
    line.add_bytes(30 * MiB);
    // Shown after about a second, then redrawn every quarter second.
    std::this_thread::sleep_for(1300ms);
    line.print("some error");
    std::this_thread::sleep_for(500ms);  // drawn again below the error
  }
  const std::string out = terminal.str();
  CAPTURE(out);
  CHECK(out.starts_with(std::string(kErase) + "featpool: 3/10 tensors · 30.0 MiB of 100.0 MiB · "));
  CHECK(contains(out, std::string(kErase) + "some error\n"));
  // The error is the only line break: the progress line is redrawn in place.
  CHECK(occurrences(out, "\n") == 1);
  auto after_error = out.substr(out.find("some error\n") + 11);
  CHECK(after_error.starts_with(std::string(kErase) + "featpool: 3/10 tensors"));
  // Erased at the end, leaving the terminal as it was.
  CHECK(out.ends_with(kErase));
  CHECK_FALSE(out.ends_with(std::string(kErase) + std::string(kErase)));
}

}  // namespace
}  // namespace featpool
