#pragma once
// Output files written under a temporary name beside their target and
// renamed onto it only when complete, shared by every sink so that a
// crash, a full disk or Ctrl-C never leaves a truncated output.

#include <string>
#include <string_view>

#include "featpool/sink.hpp"

namespace featpool {

// Part of every temporary name: `.<target name>.featpool-tmp-XXXXXX`.
inline constexpr std::string_view kTemporaryMarker = ".featpool-tmp-";

// Writes all of `bytes` to `fd`; throws featpool::error naming `target`.
void write_all(int fd, std::string_view bytes, const std::string& target);

// A file created under a temporary name beside its target and renamed onto
// it by publish(); removed by the destructor if never published.
class temporary_file {
 public:
  // Creates the file at once, so an unwritable folder is found before any
  // work. The target name is cut short in the temporary name when the
  // whole would pass the file system's name limit.
  temporary_file(std::string target, on_existing existing);
  ~temporary_file();
  temporary_file(const temporary_file&) = delete;
  temporary_file& operator=(const temporary_file&) = delete;

  const std::string& path() const { return path_; }
  const std::string& target() const { return target_; }

  void write(std::string_view bytes) { write_all(fd_, bytes, target_); }

  // For libraries that open the file by name themselves.
  void close();

  // Completes the file under its temporary name (on disk, with `sync`).
  void finish(bool sync);

  // Renames the finished file into place (with `sync`, fsyncs its folder).
  void publish(bool sync);

 private:
  std::string target_;
  on_existing existing_;
  std::string path_;
  int fd_ = -1;
  bool published_ = false;
};

}  // namespace featpool
