#include "h5_handle.hpp"

#include <algorithm>
#include <cstdio>
#include <new>

#include <fmt/format.h>

#include "featpool/error.hpp"

namespace featpool::detail {
namespace {

std::recursive_mutex& h5_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}

herr_t keep_innermost(unsigned n, const H5E_error2_t* entry, void* data) {
  // Walking upward, entry 0 is the innermost: the call that actually failed.
  if (n == 0 && entry->desc != nullptr) *static_cast<std::string*>(data) = entry->desc;
  return 0;
}

// HDF5's descriptions are single lines in practice; make sure of it, since a
// featpool error message is always exactly one line.
std::string one_line(std::string text) {
  std::replace_if(
      text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  auto last = text.find_last_not_of(' ');
  text.erase(last == std::string::npos ? 0 : last + 1);
  return text;
}

// HDF5's file drivers describe a failed system call as
// "<what failed>: time = ..., filename = '...', ..., error message = '<strerror>', ...".
std::string without_call_details(std::string text) {
  constexpr std::string_view kReasonField = "error message = '";
  auto field = text.find(kReasonField);
  auto colon = text.find(':');
  if (field == std::string::npos || colon == std::string::npos || colon > field) return text;
  auto start = field + kReasonField.size();
  auto end = text.find('\'', start);
  if (end == std::string::npos) return text;
  return text.substr(0, colon) + ": " + text.substr(start, end - start);
}

// HDF5 states a truncated file in its own variables' names:
// "truncated file: eof = 60000, sblock->base_addr = 0, stored_eof = 139576".
std::string plain_truncation(std::string text) {
  unsigned long long eof = 0, base = 0, stored = 0;
  if (std::sscanf(text.c_str(),
                  "truncated file: eof = %llu, sblock->base_addr = %llu, "
                  "stored_eof = %llu",
                  &eof, &base, &stored) != 3 ||
      base != 0) {  // a user block: the sizes count from its end
    return text;
  }
  return fmt::format("truncated file: it has {} bytes, its superblock says {}", eof, stored);
}

}  // namespace

h5_lock::h5_lock() : lock_(h5_mutex()) {
  // Set once per thread: the error-printing switch lives in HDF5's
  // per-thread state in a thread-safe build.
  thread_local bool silenced = false;
  if (!silenced) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    silenced = true;
  }
}

void reset_h5_lock_in_child() noexcept {
  // A fresh mutex over the held one: destroying a locked mutex is undefined,
  // and nothing of the old one is worth keeping.
  new (&h5_mutex()) std::recursive_mutex;
}

void h5_handle::reset() noexcept {
  if (id_ < 0) return;
  h5_lock lock;
  // H5Idec_ref closes any kind of identifier when its count drops to zero;
  // a failure to close (a file already gone) leaves nothing to do.
  H5Idec_ref(id_);
  id_ = H5I_INVALID_HID;
}

std::string take_innermost_h5_error() {
  h5_lock lock;
  std::string description;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, &description);
  H5Eclear2(H5E_DEFAULT);
  return plain_truncation(without_call_details(one_line(std::move(description))));
}

void h5_context::fail_from_stack(std::string_view what) const {
  std::string reason = take_innermost_h5_error();
  if (reason.empty()) reason = std::string(what);
  fail(std::move(reason));
}

void h5_context::fail(std::string reason) const { throw error(file, tensor, std::move(reason)); }

}  // namespace featpool::detail
