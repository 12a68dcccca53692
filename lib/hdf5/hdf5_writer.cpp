// HDF5 outputs, through the HDF5 C library, laid out as h5py lays out
// `f[name] = array` and `f[name].attrs[key] = value`, so h5py (and h5ls)
// show the arrays as they were pooled:
//
//  - one contiguous dataset per tensor (no chunks, no filters) at its name,
//    its groups created one by one as the path needs them; a tensor of rank
//    0 is a scalar dataspace, zero-length axes stay in a simple dataspace;
//  - element types as h5py makes them from numpy's: native integers, IEEE
//    float32/float64, h5py's float16 (an IEEE half derived from the 32-bit
//    type) and h5py's bool (an enum over int8 with FALSE = 0 and TRUE = 1),
//    so h5py reads each back as the numpy dtype it was;
//  - featpool's provenance attributes as h5py writes a Python str: scalar,
//    variable-length, UTF-8 (text that is not UTF-8, such as a file name in
//    another encoding, is marked ASCII and reads back as bytes), and
//    featpool_input_shape as a 1-D int64 array.
//
// The same tensors give the same bytes: object timestamps are off on the
// root group (through the file creation properties), on every group and on
// every dataset, and nothing else HDF5 stores varies between runs. The
// file uses HDF5's default, earliest format, which every HDF5 since 1.8 and
// so every h5py reads.
//
// Rejected, naming the tensor: a name with no components ("", "/"), a name
// already taken in the file, a path through a dataset, data whose size does
// not match the tensor's shape. A failed write leaves nothing of the tensor
// in the file; when even that cleanup fails, the file cannot be closed
// successfully any more.
//
// A full disk is an error from write() or close(), never a crash: HDF5 1.10
// copes badly with failed writes (see close and discard), so the writer
// keeps every write that can fail where HDF5 recovers from it.

#include "hdf5_writer.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>
#include <string_view>
#include <vector>

#include "h5_handle.hpp"
#include "h5_text.hpp"
#include "h5_types.hpp"
#include <fmt/format.h>
#include <hdf5.h>

#include "featpool/error.hpp"

namespace featpool::detail {
namespace {

// A dataset name's groups and its last component: "/a//b/c", "a/b/c" and
// "/a/./b/c" are all a, b, c, as HDF5 itself resolves them.
std::vector<std::string> path_components(const std::string& name) {
  std::vector<std::string> components;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    std::string component = name.substr(start, end - start);
    if (!component.empty() && component != ".") components.push_back(std::move(component));
    start = end + 1;
  }
  return components;
}

// The type a dataset of `type` is stored as.
h5_handle file_type_for(dtype type, const h5_context& where) {
  std::string what = fmt::format("cannot create the {} type", dtype_name(type));
  switch (type) {
    case dtype::bool_:
      // h5py's bool enum, which is also what the reader reads bools as.
      return memory_type_for(H5T_NATIVE_INT8, type, where);
    case dtype::float16: {
      // h5py's float16, made from the 32-bit type just as h5py makes it, so
      // h5py recognizes it as numpy's float16.
      auto half = where.own(H5Tcopy(H5T_IEEE_F32LE), what);
      where.check(H5Tset_fields(half.get(), 15, 10, 5, 0, 10), what);
      where.check(H5Tset_size(half.get(), 2), what);
      where.check(H5Tset_ebias(half.get(), 15), what);
      where.check(H5Tset_precision(half.get(), 16), what);
      return half;
    }
    case dtype::float32:
      return where.own(H5Tcopy(H5T_IEEE_F32LE), what);
    case dtype::float64:
      return where.own(H5Tcopy(H5T_IEEE_F64LE), what);
    default:
      return where.own(H5Tcopy(native_integer(type)), what);
  }
}

void write_string_attribute(hid_t object, const char* name, const std::string& value,
                            const h5_context& where) {
  std::string what = fmt::format("cannot write the attribute {}", name);
  auto type = where.own(H5Tcopy(H5T_C_S1), what);
  where.check(H5Tset_size(type.get(), H5T_VARIABLE), what);
  H5T_cset_t charset = valid_utf8(value) == value ? H5T_CSET_UTF8 : H5T_CSET_ASCII;
  where.check(H5Tset_cset(type.get(), charset), what);
  auto space = where.own(H5Screate(H5S_SCALAR), what);
  auto attribute =
      where.own(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), what);
  const char* text = value.c_str();
  where.check(H5Awrite(attribute.get(), type.get(), &text), what);
}

void write_shape_attribute(hid_t object, const char* name, const std::vector<std::uint64_t>& shape,
                           const h5_context& where) {
  std::string what = fmt::format("cannot write the attribute {}", name);
  std::vector<std::int64_t> values;
  for (auto extent : shape) {
    if (extent > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      where.fail(fmt::format("{}: {} does not fit in int64", what, extent));
    }
    values.push_back(static_cast<std::int64_t>(extent));
  }
  hsize_t length = values.size();
  auto space = where.own(H5Screate_simple(1, &length, nullptr), what);
  auto attribute = where.own(
      H5Acreate2(object, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), what);
  if (!values.empty()) {
    where.check(H5Awrite(attribute.get(), H5T_NATIVE_INT64, values.data()), what);
  }
}

// The number of bytes a tensor of this shape and type holds.
std::uint64_t tensor_bytes(const pooled_tensor& tensor, const h5_context& where) {
  std::uint64_t bytes = dtype_size(tensor.type);
  for (auto extent : tensor.shape) {
    if (__builtin_mul_overflow(bytes, extent, &bytes)) {
      where.fail("shape is too large: its size overflows 64 bits");
    }
  }
  return bytes;
}

class h5_writer final : public hdf5_writer {
 public:
  h5_writer(const std::string& path, const std::string& display) : where_{display, {}} {
    constexpr std::string_view kSetup = "cannot set up the file's properties";
    h5_lock lock;
    // The root group takes its creation properties from the file's.
    auto file_properties = where_.own(H5Pcreate(H5P_FILE_CREATE), kSetup);
    where_.check(H5Pset_obj_track_times(file_properties.get(), false), kSetup);
    group_properties_ = where_.own(H5Pcreate(H5P_GROUP_CREATE), kSetup);
    where_.check(H5Pset_obj_track_times(group_properties_.get(), false), kSetup);
    dataset_properties_ = where_.own(H5Pcreate(H5P_DATASET_CREATE), kSetup);
    where_.check(H5Pset_obj_track_times(dataset_properties_.get(), false), kSetup);
    where_.check(H5Pset_layout(dataset_properties_.get(), H5D_CONTIGUOUS), kSetup);
    // The POSIX driver (discard relies on it), without a sieve buffer: a
    // dataset's data goes to the file in H5Dwrite, where a full disk is that
    // tensor's error, not in H5Dclose, whose failure would leave the dataset
    // open (and HDF5 crashing on it at exit).
    auto access = where_.own(H5Pcreate(H5P_FILE_ACCESS), kSetup);
    where_.check(H5Pset_fapl_sec2(access.get()), kSetup);
    where_.check(H5Pset_sieve_buf_size(access.get(), 0), kSetup);
    // The file is a temporary one no other process knows of: no lock, which
    // filesystems without locking (some network mounts) would refuse.
    where_.check(H5Pset_file_locking(access.get(), false, true), kSetup);
    hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, file_properties.get(), access.get());
    if (file < 0) {
      // The file driver says "unable to open file: <system reason>".
      std::string reason = take_innermost_h5_error();
      constexpr std::string_view kDriverPrefix = "unable to open file: ";
      if (reason.starts_with(kDriverPrefix)) reason.erase(0, kDriverPrefix.size());
      where_.fail("cannot create the file" + (reason.empty() ? "" : ": " + reason));
    }
    file_ = h5_handle(file);
  }

  // A writer that was not closed successfully discards its file, which its
  // sink removes.
  ~h5_writer() override {
    if (file_) discard();
  }

  void write(const std::string& name, const pooled_tensor& tensor,
             const std::optional<provenance>& origin) override {
    h5_lock lock;
    h5_context at{where_.file, name};
    check_usable(at);
    auto components = path_components(name);
    if (components.empty()) at.fail("not a dataset name: it has no components");
    std::uint64_t bytes = tensor_bytes(tensor, at);
    if (bytes != tensor.data.size()) {
      at.fail(fmt::format("{} bytes of data for a {} tensor of shape {}, which holds {}",
                          tensor.data.size(), dtype_name(tensor.type), python_shape(tensor.shape),
                          bytes));
    }

    // Everything this call adds to the file, removed again if it fails.
    std::vector<std::string> created;
    try {
      std::string path;
      for (std::size_t i = 0; i + 1 < components.size(); ++i) {
        path += "/" + components[i];
        if (make_group(path, at)) created.push_back(path);
      }
      path += "/" + components.back();
      if (exists(path, at)) at.fail("an object of that name already exists in the file");
      auto type = file_type_for(tensor.type, at);
      h5_handle space;
      if (tensor.shape.empty()) {
        space = at.own(H5Screate(H5S_SCALAR), "cannot create the dataspace");
      } else {
        std::vector<hsize_t> dims(tensor.shape.begin(), tensor.shape.end());
        space = at.own(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                       "cannot create the dataspace");
      }
      auto dataset = at.own(H5Dcreate2(file_.get(), path.c_str(), type.get(), space.get(),
                                       H5P_DEFAULT, dataset_properties_.get(), H5P_DEFAULT),
                            "cannot create the dataset");
      created.push_back(path);
      // Nothing to write for an empty tensor: its storage is never allocated.
      if (bytes > 0) {
        auto memory = memory_type_for(type.get(), tensor.type, at);
        at.check(H5Dwrite(dataset.get(), memory.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                          tensor.data.data()),
                 "cannot write the dataset");
      }
      if (origin) {
        write_string_attribute(dataset.get(), "featpool_op", origin->op, at);
        write_string_attribute(dataset.get(), "featpool_size", origin->size, at);
        write_string_attribute(dataset.get(), "featpool_layout", origin->layout, at);
        write_string_attribute(dataset.get(), "featpool_source", origin->source, at);
        write_shape_attribute(dataset.get(), "featpool_input_shape", origin->input_shape, at);
        write_string_attribute(dataset.get(), "featpool_version", origin->version, at);
      }
    } catch (...) {
      remove_created(created);
      throw;
    }
  }

  // HDF5 1.10 cannot close a file once a flush of it failed: the close
  // fails too, its identifier stays behind half destroyed, and the library
  // crashes on it at exit. So nothing here lets a flush fail on a full disk:
  // the space the flush writes into is reserved first, and when the disk
  // cannot hold it, the file is discarded before HDF5 writes anything.
  void close() override {
    h5_lock lock;
    check_usable(where_);
    reserve_space();
    if (H5Fflush(file_.get(), H5F_SCOPE_LOCAL) < 0) {
      std::string reason = take_innermost_h5_error();
      discard();
      where_.fail(reason.empty() ? "cannot flush the file" : reason);
    }
    // Everything is written: closing only truncates the file to its end.
    // Not retried on failure, since what HDF5 leaves of a file it failed to
    // close must not be touched again.
    where_.check(H5Fclose(file_.release()), "cannot close the file");
  }

 private:
  // Makes the filesystem allocate every block up to the file's end (the
  // last byte HDF5 allocated), so that writing the metadata cannot run out
  // of space. Filesystems that cannot reserve space are written unreserved.
  void reserve_space() {
    hsize_t size = 0;
    void* handle = nullptr;
    if (H5Fget_filesize(file_.get(), &size) < 0 ||
        H5Fget_vfd_handle(file_.get(), H5P_DEFAULT, &handle) < 0 || handle == nullptr) {
      std::string reason = take_innermost_h5_error();
      discard();
      where_.fail(reason.empty() ? "cannot find the file's size" : reason);
    }
    int fd = *static_cast<int*>(handle);
    int result = 0;
    do {
      result = ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(size));
    } while (result != 0 && errno == EINTR);
    if (result == 0 || errno == EOPNOTSUPP || errno == ENOSYS) return;
    std::string reason = fmt::format("file write failed: {}", std::strerror(errno));
    discard();
    where_.fail(reason);
  }

  // Closes a file that will never be used: a failed or abandoned output.
  // Its descriptor is first pointed at an anonymous memory file, where the
  // metadata HDF5 writes on closing cannot fail for want of disk space.
  void discard() noexcept {
    h5_lock lock;
    void* handle = nullptr;
    if (H5Fget_vfd_handle(file_.get(), H5P_DEFAULT, &handle) >= 0 && handle != nullptr) {
      int scratch = ::memfd_create("featpool-discarded-output", MFD_CLOEXEC);
      if (scratch >= 0) {
        ::dup3(scratch, *static_cast<int*>(handle), O_CLOEXEC);
        ::close(scratch);
      }
    }
    file_.reset();
    take_innermost_h5_error();
  }

  void check_usable(const h5_context& at) const {
    if (!broken_.empty()) at.fail("the file is unusable after an earlier failure: " + broken_);
    if (!file_) at.fail("the file is already closed");
  }

  bool exists(const std::string& path, const h5_context& at) const {
    return at.check(H5Lexists(file_.get(), path.c_str(), H5P_DEFAULT), "cannot look up " + path) >
           0;
  }

  // Makes sure the group at `path` exists (its parent does); true when it
  // was created. Intermediate groups HDF5 creates itself would take the
  // default creation properties, timestamps included, so each is made here.
  bool make_group(const std::string& path, const h5_context& at) {
    if (groups_.contains(path)) return false;
    bool created = false;
    if (exists(path, at)) {
      auto object = at.own(H5Oopen(file_.get(), path.c_str(), H5P_DEFAULT), "cannot open " + path);
      H5I_type_t kind = H5Iget_type(object.get());
      if (kind != H5I_GROUP) {
        at.fail(fmt::format("{} is a {}, not a group", path,
                            kind == H5I_DATASET ? "dataset" : "named datatype"));
      }
    } else {
      at.own(
          H5Gcreate2(file_.get(), path.c_str(), H5P_DEFAULT, group_properties_.get(), H5P_DEFAULT),
          "cannot create the group " + path);
      created = true;
    }
    groups_.insert(path);
    return created;
  }

  // Unlinks what a failed write created, newest first; if that fails too,
  // the file is marked unusable so that it is never completed half-written.
  void remove_created(const std::vector<std::string>& created) {
    for (auto it = created.rbegin(); it != created.rend(); ++it) {
      groups_.erase(*it);
      if (H5Ldelete(file_.get(), it->c_str(), H5P_DEFAULT) < 0) {
        std::string reason = take_innermost_h5_error();
        broken_ = fmt::format("cannot remove {} after a failed write: {}", *it,
                              reason.empty() ? "unknown reason" : reason);
        return;
      }
    }
  }

  h5_context where_;
  h5_handle group_properties_;
  h5_handle dataset_properties_;
  std::set<std::string> groups_;  // groups known to exist
  std::string broken_;            // why the file cannot be completed, once it cannot
  h5_handle file_;
};

}  // namespace

std::unique_ptr<hdf5_writer> create_hdf5_writer(const std::string& path,
                                                const std::string& display) {
  return std::make_unique<h5_writer>(path, display);
}

}  // namespace featpool::detail
