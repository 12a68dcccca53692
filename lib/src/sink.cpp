#include "featpool/sink.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
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
std::string random_suffix(const std::string& target) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::array<unsigned char, 6> bytes{};
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

// A file created under a temporary name beside its target and renamed onto
// it by publish(); removed by the destructor if never published.
class temporary_file {
 public:
  explicit temporary_file(std::string target) : target_(std::move(target)) {
    fs::path where(target_);
    // Built piece by piece: g++ 12 warns falsely on "." + string here.
    std::string prefix(".");
    prefix += where.filename().string();
    prefix += kTemporaryMarker;
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
    if (::rename(path_.c_str(), target_.c_str()) != 0) {
      throw error(target_, "cannot rename the finished output into place: " + reason_of(errno));
    }
    published_ = true;
    if (sync) sync_folder(fs::path(target_).parent_path(), target_);
  }

 private:
  std::string target_;
  std::string path_;
  int fd_ = -1;
  bool published_ = false;
};

std::string_view bytes_of(const pooled_tensor& tensor) {
  return {reinterpret_cast<const char*>(tensor.data.data()), tensor.data.size()};
}

class npy_sink final : public tensor_sink {
 public:
  npy_sink(const std::string& target, bool sync) : file_(target), sync_(sync) {}

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
  npz_sink(const std::string& target, bool sync) : file_(target), sync_(sync) {}

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
  hdf5_sink(const std::string& target, bool sync) : file_(target), sync_(sync) {
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

std::unique_ptr<tensor_sink> create_sink(output_format format, const std::string& target,
                                         bool sync) {
  switch (format) {
    case output_format::npy:
      break;
    case output_format::npz:
      return std::make_unique<npz_sink>(target, sync);
    case output_format::hdf5:
      return std::make_unique<hdf5_sink>(target, sync);
  }
  return std::make_unique<npy_sink>(target, sync);
}

std::unique_ptr<tensor_sink> create_stdout_sink() { return std::make_unique<stdout_sink>(); }

void write_file_atomically(const std::string& path, std::string_view bytes, bool sync) {
  temporary_file file(path);
  file.write(bytes);
  file.finish(sync);
  file.publish(sync);
}

bool is_temporary_name(const std::string& file_name) {
  return file_name.starts_with('.') && file_name.find(kTemporaryMarker) != std::string::npos;
}

}  // namespace featpool
