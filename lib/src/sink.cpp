#include "featpool/sink.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <ostream>
#include <span>

#include <fmt/format.h>

#include "featpool/error.hpp"
#include "featpool/hdf5.hpp"
#include "featpool/npy.hpp"
#include "featpool/zip.hpp"

namespace featpool {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kTemporaryMarker = ".featpool-tmp-";

std::string reason_of(int error_number) { return std::strerror(error_number); }

void write_all(int fd, std::string_view bytes, const std::string& target) {
  while (!bytes.empty()) {
    ssize_t done = ::write(fd, bytes.data(), bytes.size());
    if (done < 0) {
      if (errno == EINTR) continue;
      throw error(target, "cannot write: " + reason_of(errno));
    }
    bytes.remove_prefix(static_cast<std::size_t>(done));
  }
}

void sync_folder(const fs::path& folder, const std::string& target) {
  int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw error(target, "cannot sync its folder: " + reason_of(errno));
  int result = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (result != 0) throw error(target, "cannot sync its folder: " + reason_of(saved));
}

// NPY outputs up to this size are written with their header in one call.
constexpr std::size_t kCombinedWriteBytes = std::size_t{1} << 20;

// Random names collide about never; a few retries cover the rest.
constexpr int kNameAttempts = 16;

// Six random letters and digits, as mkstemp uses.
constexpr std::size_t kSuffixBytes = 6;

std::string random_suffix(const std::string& target) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::array<unsigned char, kSuffixBytes> bytes{};
  ssize_t got;
  do {
    got = ::getrandom(bytes.data(), bytes.size(), 0);
  } while (got < 0 && errno == EINTR);
  if (got != static_cast<ssize_t>(bytes.size())) {
    throw error(target, "cannot create the output: no random bytes for its temporary name");
  }
  std::string suffix;
  for (auto b : bytes) suffix += kAlphabet[b % kAlphabet.size()];
  return suffix;
}

// ".<target name>.featpool-tmp-": the target name is cut, at a UTF-8
// character boundary, so that the whole temporary name stays within
// NAME_MAX; any target name the file system takes can then be written.
std::string temporary_prefix(const std::string& target_name) {
  constexpr std::size_t kRoom = NAME_MAX - 1 - kTemporaryMarker.size() - kSuffixBytes;
  std::string kept = target_name.substr(0, kRoom);
  auto is_continuation = [](char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; };
  while (!kept.empty() && kept.size() < target_name.size() &&
         is_continuation(target_name[kept.size()])) {
    kept.pop_back();
  }
  // Built piece by piece: g++ 12 warns falsely on "." + string here.
  std::string prefix(".");
  prefix += kept;
  prefix += kTemporaryMarker;
  return prefix;
}

// rename() that fails with EEXIST rather than replace `to`. File systems
// without RENAME_NOREPLACE (NFS) get link() and unlink(), as atomic; those
// without hard links either, a plain rename.
bool rename_without_replacing(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
    return true;
  }
  if (errno != EINVAL && errno != ENOSYS) return false;
  if (::link(from.c_str(), to.c_str()) == 0) {
    ::unlink(from.c_str());
    return true;
  }
  if (errno != EPERM && errno != ENOTSUP) return false;
  return ::rename(from.c_str(), to.c_str()) == 0;
}

// A file created under a temporary name beside its target and renamed onto
// it by publish(); removed by the destructor if never published.
class temporary_file {
 public:
  temporary_file(std::string target, on_existing existing)
      : target_(std::move(target)), existing_(existing) {
    fs::path where(target_);
    // Refused now, not when the finished file is renamed onto it.
    if (where.filename().string().size() > NAME_MAX) {
      throw error(target_, "cannot create the output: " + reason_of(ENAMETOOLONG));
    }
    std::string prefix = temporary_prefix(where.filename().string());
    // Created 0666 so the kernel applies the umask, as for any other file
    // this process creates (mkstemp's 0600 would need a umask lookup that
    // is not thread-safe).
    for (int attempt = 0; attempt < kNameAttempts; ++attempt) {
      std::string candidate = (where.parent_path() / (prefix + random_suffix(target_))).string();
      fd_ = ::open(candidate.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0) {
        path_ = std::move(candidate);
        return;
      }
      if (errno != EEXIST) break;
    }
    throw error(target_, "cannot create the output: " + reason_of(errno));
  }
  ~temporary_file() {
    if (fd_ >= 0) ::close(fd_);
    if (!published_) ::unlink(path_.c_str());
  }
  temporary_file(const temporary_file&) = delete;
  temporary_file& operator=(const temporary_file&) = delete;

  const std::string& path() const { return path_; }
  const std::string& target() const { return target_; }

  void write(std::string_view bytes) { write_all(fd_, bytes, target_); }

  // For libraries that open the file by name themselves.
  void close() {
    if (fd_ >= 0 && ::close(fd_) != 0) throw error(target_, "cannot write: " + reason_of(errno));
    fd_ = -1;
  }

  // Completes the file under its temporary name (on disk, with `sync`).
  void finish(bool sync) {
    if (sync) {
      int fd = fd_ >= 0 ? fd_ : ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::fsync(fd) != 0) throw error(target_, "cannot sync: " + reason_of(errno));
      if (fd != fd_) ::close(fd);
    }
    close();
  }

  // Renames the finished file into place.
  void publish(bool sync) {
    bool renamed = existing_ == on_existing::refuse ? rename_without_replacing(path_, target_)
                                                    : ::rename(path_.c_str(), target_.c_str()) == 0;
    if (!renamed && errno == EEXIST) {
      throw error(target_,
                  "exists now (another process wrote it meanwhile); pass --force to "
                  "overwrite it");
    }
    if (!renamed) {
      throw error(target_, "cannot rename the finished output into place: " + reason_of(errno));
    }
    published_ = true;
    if (sync) sync_folder(fs::path(target_).parent_path(), target_);
  }

 private:
  std::string target_;
  on_existing existing_;
  std::string path_;
  int fd_ = -1;
  bool published_ = false;
};

std::string_view bytes_of(const pooled_tensor& tensor) {
  return {reinterpret_cast<const char*>(tensor.data.data()), tensor.data.size()};
}

class npy_sink final : public tensor_sink {
 public:
  npy_sink(const std::string& target, bool sync, on_existing existing)
      : file_(target, existing), sync_(sync) {}

  void write(const std::string&, const pooled_tensor& tensor,
             const std::optional<provenance>&) override {
    // One write for small outputs: batches write thousands of them.
    std::string bytes = npy_header_bytes(tensor.type, tensor.shape);
    if (tensor.data.size() <= kCombinedWriteBytes) {
      bytes += bytes_of(tensor);
      file_.write(bytes);
      return;
    }
    file_.write(bytes);
    file_.write(bytes_of(tensor));
  }
  void finish() override { file_.finish(sync_); }
  void publish() override { file_.publish(sync_); }

 private:
  temporary_file file_;
  bool sync_;
};

class stdout_sink final : public tensor_sink {
 public:
  void write(const std::string&, const pooled_tensor& tensor,
             const std::optional<provenance>&) override {
    write_all(STDOUT_FILENO, npy_header_bytes(tensor.type, tensor.shape), "-");
    write_all(STDOUT_FILENO, bytes_of(tensor), "-");
  }
  void finish() override {}
  void publish() override {}
};

// NPZ as np.savez writes it: one stored NPY member per tensor. Every entry
// gets the same DOS timestamp (1980-01-01 00:00), so the same tensors give
// the same bytes.
class npz_sink final : public tensor_sink {
 public:
  npz_sink(const std::string& target, bool sync, on_existing existing)
      : file_(target, existing), sync_(sync) {}

  void write(const std::string& name, const pooled_tensor& tensor,
             const std::optional<provenance>&) override {
    members_.push_back({name, npy_header_bytes(tensor.type, tensor.shape)});
    members_.back().bytes.append(bytes_of(tensor));
  }

  void finish() override {
    file_.close();
    try {
      auto archive = create_zip_writer(file_.path(), file_.target());
      for (const auto& m : members_) archive->add(m.name, std::as_bytes(std::span(m.bytes)));
      archive->close();
    } catch (const zip_failure& failure) {
      throw error(file_.target(), std::string("cannot write: ") + failure.what());
    }
    members_.clear();
    file_.finish(sync_);
  }
  void publish() override { file_.publish(sync_); }

 private:
  struct npz_member {
    std::string name;
    std::string bytes;
  };
  temporary_file file_;
  bool sync_;
  std::vector<npz_member> members_;  // the archive reads them when it is closed
};

class hdf5_sink final : public tensor_sink {
 public:
  hdf5_sink(const std::string& target, bool sync, on_existing existing)
      : file_(target, existing), sync_(sync) {
    file_.close();
    writer_ = create_hdf5_file(file_.path(), target);
  }

  void write(const std::string& name, const pooled_tensor& tensor,
             const std::optional<provenance>& origin) override {
    writer_->write(name, tensor, origin);
  }

  void finish() override {
    writer_->close();
    file_.finish(sync_);
  }
  void publish() override { file_.publish(sync_); }

 private:
  temporary_file file_;
  bool sync_;
  std::unique_ptr<hdf5_writer> writer_;
};

}  // namespace

std::unique_ptr<tensor_sink> create_sink(output_format format, const std::string& target, bool sync,
                                         on_existing existing) {
  switch (format) {
    case output_format::npy:
      break;
    case output_format::npz:
      return std::make_unique<npz_sink>(target, sync, existing);
    case output_format::hdf5:
      return std::make_unique<hdf5_sink>(target, sync, existing);
  }
  return std::make_unique<npy_sink>(target, sync, existing);
}

std::unique_ptr<tensor_sink> create_stdout_sink() { return std::make_unique<stdout_sink>(); }

namespace {

// Writes through an existing path that is no regular file, as `>` would.
// O_NONBLOCK: a FIFO that nobody reads fails at once instead of blocking.
void write_in_place(const std::string& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0666);
  if (fd < 0 && errno == ENXIO) throw error(path, "cannot write: nothing reads the FIFO");
  if (fd < 0) throw error(path, "cannot write: " + reason_of(errno));
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  try {
    write_all(fd, bytes, path);
  } catch (const error&) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) throw error(path, "cannot write: " + reason_of(errno));
}

}  // namespace

void write_output_file(const std::string& path, std::string_view bytes, bool sync) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) return write_in_place(path, bytes);
  temporary_file file(path, on_existing::replace);
  file.write(bytes);
  file.finish(sync);
  file.publish(sync);
}

void write_standard_output(std::ostream& out, std::string_view text) {
  errno = 0;
  out << text;
  out.flush();
  if (!out) throw error("-", "cannot write: " + (errno ? reason_of(errno) : "the write failed"));
}

bool is_temporary_name(const std::string& file_name) {
  return file_name.starts_with('.') && file_name.find(kTemporaryMarker) != std::string::npos;
}

}  // namespace featpool
