#pragma once
// The thin layer between featpool and the HDF5 C API. Three rules hold for
// every HDF5 call the module makes:
//
//  - it runs under h5_lock, one process-wide lock. Debian's libhdf5 is built
//    thread-safe, which serializes calls anyway; the lock makes that explicit
//    and also switches off HDF5's automatic error printing in each thread the
//    first time it calls HDF5 (the setting is per thread in a thread-safe
//    build, so a worker that missed it would print a fifteen-line trace);
//  - its result goes through h5_context::check(), which turns a failure into
//    one featpool::error naming the file and dataset with the innermost
//    reason on HDF5's error stack (the outer entries only repeat "unable to
//    open file" in ever vaguer words);
//  - every identifier it returns is owned by an h5_handle, a move-only value
//    that closes it in a noexcept destructor.

#include <concepts>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include <hdf5.h>

namespace featpool::detail {

// Holds the module's HDF5 lock for its lifetime. The lock is recursive:
// handles close themselves under it, and they are often destroyed while an
// enclosing scope already holds it (during stack unwinding, for instance).
class h5_lock {
 public:
  h5_lock();

 private:
  std::unique_lock<std::recursive_mutex> lock_;
};

// In a child made by fork() while this thread held the lock (see
// h5_isolation.hpp): makes the lock free again. The child's copy is held by
// a thread id the child does not have, so it could never be taken again.
void reset_h5_lock_in_child() noexcept;

// Owns one HDF5 identifier of any kind (file, dataset, datatype, dataspace,
// attribute, property list) and releases it exactly once.
class h5_handle {
 public:
  h5_handle() = default;
  // Takes ownership of a valid identifier (see h5_context::own).
  explicit h5_handle(hid_t id) noexcept : id_(id) {}
  h5_handle(h5_handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  h5_handle& operator=(h5_handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  h5_handle(const h5_handle&) = delete;
  h5_handle& operator=(const h5_handle&) = delete;
  ~h5_handle() { reset(); }

  hid_t get() const noexcept { return id_; }
  explicit operator bool() const noexcept { return id_ >= 0; }
  void reset() noexcept;
  // Gives up ownership without closing, for a caller that closes the
  // identifier itself and checks the result (a file's final H5Fclose).
  hid_t release() noexcept { return std::exchange(id_, H5I_INVALID_HID); }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// The innermost description on this thread's HDF5 error stack, on one line,
// and clears the stack; empty when the stack holds nothing. A failed system
// call is described by HDF5 with the time, the file name (a temporary one,
// when writing), the descriptor, buffer addresses and offsets; only what
// failed and the system's reason are kept ("file write failed: No space
// left on device").
std::string take_innermost_h5_error();

// What a failure is about: every error raised through it names this file and,
// when set, this dataset.
struct h5_context {
  std::string file;
  std::string tensor;

  // Throws featpool::error with HDF5's innermost reason, or with `what` when
  // the library left no reason on the stack.
  [[noreturn]] void fail_from_stack(std::string_view what) const;
  // Throws featpool::error with this reason.
  [[noreturn]] void fail(std::string reason) const;

  // Passes a non-negative result through; a negative one is HDF5's failure.
  template <std::signed_integral T>
  T check(T result, std::string_view what) const {
    if (result < 0) fail_from_stack(what);
    return result;
  }
  // Checks a call that returns a new identifier and takes ownership of it.
  h5_handle own(hid_t id, std::string_view what) const { return h5_handle(check(id, what)); }
};

}  // namespace featpool::detail
