#pragma once
// featpool's one exception type. It carries the file and tensor a failure is
// about, so every message the user sees reads `FILE[:TENSOR]: reason`.

#include <stdexcept>
#include <string>
#include <string_view>

namespace featpool {

class error : public std::runtime_error {
 public:
  error(std::string file, std::string tensor, std::string reason);
  error(std::string file, std::string reason) : error(std::move(file), {}, std::move(reason)) {}

  const std::string& file() const noexcept { return file_; }
  const std::string& tensor() const noexcept { return tensor_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string file_;
  std::string tensor_;
  std::string reason_;
};

// Bad command-line usage (exit 2): a malformed value, incompatible flags.
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Whether a name read from a file has a control character (a line break,
// an escape): such names are refused, so that every message stays one line
// and a terminal shows what the file holds.
bool has_control_character(std::string_view text);

// The line main prints for a failure: "featpool: error: " and the message,
// with any line breaks a library put in it folded, so it stays one line.
std::string error_line(const std::exception& failure);

}  // namespace featpool
