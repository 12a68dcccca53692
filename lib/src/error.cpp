#include "featpool/error.hpp"

#include <algorithm>
#include <utility>

namespace featpool {
namespace {

std::string compose(const std::string& file, const std::string& tensor, const std::string& reason) {
  std::string what = file;
  if (!tensor.empty()) what += ":" + tensor;
  if (!what.empty()) what += ": ";
  return what + reason;
}

}  // namespace

error::error(std::string file, std::string tensor, std::string reason)
    : std::runtime_error(compose(file, tensor, reason)),
      file_(std::move(file)),
      tensor_(std::move(tensor)),
      reason_(std::move(reason)) {}

bool has_control_character(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7f;
  });
}

std::string error_line(const std::exception& failure) {
  std::string line = std::string("featpool: error: ") + failure.what();
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

}  // namespace featpool
