#include "featpool/sink.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <ostream>
#include <span>

#include "csv_sink.hpp"
#include "safetensors_sink.hpp"
#include "temporary_file.hpp"
#include <fmt/format.h>

#include "featpool/error.hpp"
#include "featpool/file_identity.hpp"
#include "featpool/hdf5.hpp"
#include "featpool/npy.hpp"
#include "featpool/zip.hpp"

namespace featpool {
namespace {

// NPY outputs up to this size are written with their header in one call.
constexpr std::size_t kCombinedWriteBytes = std::size_t{1} << 20;

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
    case output_format::csv:
      return create_csv_sink(',', target, sync, existing);
    case output_format::tsv:
      return create_csv_sink('\t', target, sync, existing);
    case output_format::safetensors:
      return create_safetensors_sink(target, sync, existing);
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
  if (fd < 0) throw error(path, std::string("cannot write: ") + std::strerror(errno));
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  try {
    write_all(fd, bytes, path);
  } catch (const error&) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) throw error(path, std::string("cannot write: ") + std::strerror(errno));
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
  if (!out)
    throw error(
        "-", std::string("cannot write: ") + (errno ? std::strerror(errno) : "the write failed"));
}

std::optional<std::string> output_refusal(const std::string& output,
                                          const std::vector<input_file>& inputs, bool force) {
  auto identity = identity_of(output);
  if (!identity) return std::nullopt;
  for (const auto& input : inputs) {
    if (!input.stream && identity_of(input.path) == identity) {
      return "the output is one of the inputs";
    }
  }
  if (!force) return "exists; pass --force to overwrite it";
  return std::nullopt;
}

bool is_temporary_name(const std::string& file_name) {
  return file_name.starts_with('.') && file_name.find(kTemporaryMarker) != std::string::npos;
}

}  // namespace featpool
