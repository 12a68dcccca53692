// HDF5 files, through the HDF5 C library, opened read-only.
//
// Lists every dataset reachable from the root group by hard links, each
// object once (a dataset linked twice is listed under the name met first),
// sorted bytewise by full path, named as h5py names them ("/layer4/act").
// Soft and external links are not followed, so link cycles and other files
// never come into it; named datatypes and groups are not tensors.
//
// Every dataset is listed, whatever its type (see h5_types.hpp for how
// types are named); only numeric ones can be read. A dataset with a null
// dataspace (h5py's Empty) is listed with shape [], 0 bytes and numeric
// false: it holds no data. Filters are listed whatever they are; one this
// process cannot decode (no plugin for it) is an error when the dataset is
// read, naming the filter.
//
// Rejected with one-line errors: paths that are not regular readable files,
// empty files, files without an HDF5 signature, and anything the library
// cannot make sense of (truncated or corrupt files: the library's innermost
// reason), shapes whose byte size overflows 64 bits.
//
// The listing and the attributes are read in a helper process
// (h5_isolation.hpp): on some corrupt files libhdf5 crashes doing either,
// and reading attributes can also loop forever, so that request has a CPU
// limit. Reading data stays in this process: its metadata is what the
// listing already walked.

#include "hdf5_source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>
#include <vector>

#include "h5_attributes.hpp"
#include "h5_block_reader.hpp"
#include "h5_direct_readers.hpp"
#include "h5_handle.hpp"
#include "h5_isolation.hpp"
#include "h5_listing.hpp"
#include "h5_text.hpp"
#include "h5_types.hpp"
#include "lzf_filter.hpp"
#include <fmt/format.h>

#include "featpool/error.hpp"

namespace featpool::detail {
namespace {

// HDF5's longest filter name is what fits in a pipeline message; longer
// names are cut, which is fine for a message.
constexpr std::size_t kFilterNameCapacity = 256;

// The names h5py uses for the filters it knows (dataset.compression,
// .shuffle, .fletcher32, .scaleoffset), HDF5's name for N-Bit.
std::string filter_name(H5Z_filter_t id) {
  switch (id) {
    case H5Z_FILTER_DEFLATE:
      return "gzip";
    case H5Z_FILTER_SHUFFLE:
      return "shuffle";
    case H5Z_FILTER_FLETCHER32:
      return "fletcher32";
    case H5Z_FILTER_SZIP:
      return "szip";
    case H5Z_FILTER_NBIT:
      return "nbit";
    case H5Z_FILTER_SCALEOFFSET:
      return "scaleoffset";
    case kLzfFilterId:
      return "lzf";
    default:
      return fmt::format("filter {}", id);
  }
}

// A name from the file, safe to put in a one-line message.
std::string printable(std::string_view text) {
  std::string out = valid_utf8(text);
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c >= 0 && c < 0x20; }, '?');
  return out;
}

struct pipeline_filter {
  H5Z_filter_t id;
  std::string name;  // as stored in the file, may be empty
};

std::vector<pipeline_filter> read_pipeline(hid_t dcpl, const h5_context& where) {
  int count = where.check(H5Pget_nfilters(dcpl), "cannot read the filter pipeline");
  std::vector<pipeline_filter> filters;
  for (int i = 0; i < count; ++i) {
    unsigned flags = 0;
    std::size_t values = 0;
    std::array<char, kFilterNameCapacity + 1> name{};
    unsigned config = 0;
    H5Z_filter_t id = where.check(H5Pget_filter2(dcpl, static_cast<unsigned>(i), &flags, &values,
                                                 nullptr, name.size() - 1, name.data(), &config),
                                  "cannot read the filter pipeline");
    filters.push_back({id, printable(name.data())});
  }
  return filters;
}

// A filter the pipeline needs but this process cannot decode is reported by
// HDF5 as a plugin search failure deep in its stack; name it instead.
void check_filters_available(hid_t dcpl, const h5_context& where) {
  for (const auto& filter : read_pipeline(dcpl, where)) {
    htri_t available = H5Zfilter_avail(filter.id);
    unsigned config = 0;
    if (available > 0 && H5Zget_filter_info(filter.id, &config) < 0) available = -1;
    if (available > 0 && (config & H5Z_FILTER_CONFIG_DECODE_ENABLED)) continue;
    take_innermost_h5_error();  // the failed plugin search, if any
    where.fail(filter.name.empty()
                   ? fmt::format("filter {} is not available", filter.id)
                   : fmt::format("filter {} ({}) is not available", filter.id, filter.name));
  }
}

// Everything but the error checks HDF5 does itself: what the path is.
// Returns the file's size.
std::uint64_t check_path(const std::string& path) {
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) throw error(path, std::strerror(errno));
  if (S_ISDIR(status.st_mode)) throw error(path, std::strerror(EISDIR));
  // HDF5 reads by offset, so a pipe cannot hold an HDF5 file; checking
  // first also keeps a FIFO from blocking the open.
  if (!S_ISREG(status.st_mode)) throw error(path, "not a regular file: HDF5 needs random access");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw error(path, std::strerror(errno));
  ::close(fd);
  if (status.st_size == 0) throw error(path, "empty file");
  return static_cast<std::uint64_t>(status.st_size);
}

h5_handle open_file(const std::string& path) {
  h5_context where{path, {}};
  htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 < 0) where.fail_from_stack("cannot open the file");
  if (is_hdf5 == 0) where.fail("not an HDF5 file");
  // The default close degree is kept: every object is closed through its
  // handle before the file's own handle, so nothing is left open to decide.
  return where.own(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "cannot open the file");
}

herr_t collect_dataset(hid_t, const char* name, const H5O_info_t* object, void* data) {
  // No exception may cross HDF5's C frames: report failure as -1 instead.
  try {
    if (object->type == H5O_TYPE_DATASET) {
      static_cast<std::vector<std::string>*>(data)->push_back(std::string("/") + name);
    }
    return 0;
  } catch (...) {
    return -1;
  }
}

listed_dataset describe_dataset(hid_t dataset, const h5_context& where) {
  auto type = where.own(H5Dget_type(dataset), "cannot read the datatype");
  auto space = where.own(H5Dget_space(dataset), "cannot read the dataspace");
  auto dcpl = where.own(H5Dget_create_plist(dataset), "cannot read the creation properties");

  listed_dataset result;
  tensor_info& info = result.info;
  info.file = where.file;
  info.name = where.tensor;
  info.format = file_format::hdf5;
  info.order = memory_order::c;

  H5S_class_t space_class = H5Sget_simple_extent_type(space.get());
  if (space_class == H5S_NO_CLASS) where.fail_from_stack("cannot read the dataspace");
  result.null_space = space_class == H5S_NULL;
  int rank = 0;
  if (space_class == H5S_SIMPLE) {
    rank = where.check(H5Sget_simple_extent_ndims(space.get()), "cannot read the rank");
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
    std::vector<hsize_t> max_dims(static_cast<std::size_t>(rank));
    where.check(H5Sget_simple_extent_dims(space.get(), dims.data(), max_dims.data()),
                "cannot read the shape");
    info.shape.assign(dims.begin(), dims.end());
    // HDF5 does not check this on reading. A corrupt extent over its
    // maximum would read as billions of fill values from a few bytes.
    for (std::size_t axis = 0; axis < dims.size(); ++axis) {
      if (max_dims[axis] != H5S_UNLIMITED && dims[axis] > max_dims[axis]) {
        std::vector<std::uint64_t> limits(max_dims.begin(), max_dims.end());
        where.fail(fmt::format("corrupt dataspace: shape {} is over its maximum {}",
                               python_shape(info.shape), python_shape(limits)));
      }
    }
  }

  auto type_description = describe_h5_type(type.get(), where);
  info.dtype_string = type_description.name;
  info.stored_byte_order = type_description.order;
  if (!result.null_space) {
    info.type = type_description.type;
    info.nbytes = type_description.item_size;
    for (auto extent : info.shape) {
      if (__builtin_mul_overflow(info.nbytes, extent, &info.nbytes)) {
        where.fail("shape is too large: its size overflows 64 bits");
      }
    }
  }

  H5D_layout_t layout = H5Pget_layout(dcpl.get());
  if (layout == H5D_LAYOUT_ERROR) where.fail_from_stack("cannot read the storage layout");
  if (layout == H5D_CHUNKED) {
    std::vector<hsize_t> chunks(static_cast<std::size_t>(std::max(rank, 1)));
    int chunk_rank = where.check(H5Pget_chunk(dcpl.get(), std::max(rank, 1), chunks.data()),
                                 "cannot read the chunk shape");
    chunks.resize(static_cast<std::size_t>(std::min(chunk_rank, std::max(rank, 1))));
    info.chunks.emplace(chunks.begin(), chunks.end());
  }
  for (const auto& filter : read_pipeline(dcpl.get(), where)) {
    info.filters.push_back(filter_name(filter.id));
  }
  return result;
}

// Runs in the helper: every dataset of the file, described.
std::vector<listed_dataset> list_datasets(const std::string& path) {
  h5_lock lock;
  auto file = open_file(path);
  h5_context where{path, {}};
  std::vector<std::string> names;
  where.check(
      H5Ovisit2(file.get(), H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &names, H5O_INFO_BASIC),
      "cannot list the datasets");
  std::sort(names.begin(), names.end());
  std::vector<listed_dataset> datasets;
  for (auto& name : names) {
    h5_context at{path, name};
    auto dataset =
        at.own(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), "cannot open the dataset");
    datasets.push_back(describe_dataset(dataset.get(), at));
  }
  return datasets;
}

// Runs in the helper: each dataset's attributes, or why they cannot be
// read, as {"attributes": ...} or {"error": reason}.
nlohmann::json read_every_dataset_attributes(const std::string& path,
                                             const std::vector<std::string>& names) {
  h5_lock lock;
  auto file = open_file(path);
  auto all = nlohmann::json::array();
  for (const auto& name : names) {
    h5_context where{path, name};
    try {
      auto dataset =
          where.own(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), "cannot open the dataset");
      all.push_back({{"attributes", read_attributes(dataset.get(), where)}});
    } catch (const error& failure) {
      all.push_back({{"error", failure.reason()}});
    }
  }
  return all;
}

// The helper's work: a file's listing, or its datasets' attributes.
isolated_bytes serve_request(const isolated_bytes& bytes) {
  auto request = nlohmann::json::from_msgpack(bytes);
  auto path = request.at("path").get<std::string>();
  if (request.at("kind") == "list") return encode_listing(list_datasets(path));
  auto names = request.at("names").get<std::vector<std::string>>();
  return nlohmann::json::to_msgpack(read_every_dataset_attributes(path, names));
}

helper_process& hdf5_helper() {
  static helper_process helper(serve_request);
  return helper;
}

// The CPU time that reading a file's attributes may take: far more than
// any valid file needs (attributes are small, and every one is read once),
// far less than forever.
rlim_t attributes_cpu_seconds(std::uint64_t file_bytes, std::size_t datasets) {
  constexpr rlim_t kBaseSeconds = 5;
  constexpr std::uint64_t kBytesPerSecond = std::uint64_t{1} << 20;
  constexpr std::size_t kDatasetsPerSecond = 100;
  return kBaseSeconds + file_bytes / kBytesPerSecond + datasets / kDatasetsPerSecond;
}

class hdf5_source final : public tensor_source {
 public:
  explicit hdf5_source(std::string path) : path_(std::move(path)) {
    check_path(path_);
    auto request = nlohmann::json::to_msgpack({{"kind", "list"}, {"path", path_}});
    auto listing = decode_listing(
        hdf5_helper().call(request, path_, "listing the datasets", std::nullopt), path_);
    for (auto& dataset : listing) {
      infos_.push_back(std::move(dataset.info));
      null_space_.push_back(dataset.null_space);
    }
  }

  const std::vector<tensor_info>& tensors() const override { return infos_; }

  // Libhdf5 1.10.8 can crash or loop forever reading variable-length
  // strings from a corrupt global heap (tests/fuzz/README.md): attributes
  // are read only for the commands that show or copy them, all of a file's
  // at once, by the helper process.
  nlohmann::json attributes(std::size_t index) override {
    const tensor_info& info = tensor_at(index);
    std::lock_guard guard(attributes_mutex_);
    if (!attributes_ && !attributes_failure_) {
      try {
        attributes_ = read_attributes_isolated();
      } catch (const error&) {
        // Every dataset's attributes fail alike: fail them without waiting
        // for the library again.
        attributes_failure_ = std::current_exception();
      }
    }
    if (attributes_failure_) std::rethrow_exception(attributes_failure_);
    const auto& entry = (*attributes_)[index];
    if (auto reason = entry.find("error"); reason != entry.end()) {
      throw error(info.file, info.name, reason->get<std::string>());
    }
    return entry.at("attributes");
  }

  std::unique_ptr<block_reader> open(std::size_t index) override {
    const tensor_info& info = tensor_at(index);
    h5_context where{info.file, info.name};
    if (null_space_[index]) where.fail("null dataspace: the dataset holds no data");
    if (!info.numeric()) {
      where.fail(
          fmt::format("dtype {} is not numeric: its data cannot be read", info.dtype_string));
    }
    block_plan plan = plan_blocks(info);

    check_path(path_);
    h5_lock lock;
    auto file = open_file(path_);
    auto dapl = where.own(H5Pcreate(H5P_DATASET_ACCESS), "cannot create access properties");
    if (plan.chunk_cache_bytes > 0) {
      // Enough hash slots that the cached chunks rarely collide.
      where.check(H5Pset_chunk_cache(dapl.get(), 10007, plan.chunk_cache_bytes, 0.75),
                  "cannot size the chunk cache");
    }
    // A dataset that is gone since the listing fails here with a bare
    // "component not found" from HDF5: say what was being done.
    hid_t dataset_id = H5Dopen2(file.get(), info.name.c_str(), dapl.get());
    if (dataset_id < 0) {
      std::string reason = take_innermost_h5_error();
      where.fail("cannot open the dataset: " + (reason.empty() ? "unknown reason" : reason));
    }
    h5_handle dataset(dataset_id);
    // The reader trusts the listing's shape and type: make sure they still
    // hold for the file as it is now.
    auto now = describe_dataset(dataset.get(), where);
    if (now.info.shape != info.shape || now.info.type != info.type ||
        now.info.chunks != info.chunks) {
      where.fail("the dataset changed since the file was listed");
    }
    auto dcpl =
        where.own(H5Dget_create_plist(dataset.get()), "cannot read the creation properties");
    check_filters_available(dcpl.get(), where);
    auto file_type = where.own(H5Dget_type(dataset.get()), "cannot read the datatype");
    auto memory_type = memory_type_for(file_type.get(), *info.type, where);
    if (auto storage = find_contiguous_storage(file.get(), dataset.get(), dcpl.get(),
                                               file_type.get(), memory_type.get(), info, where)) {
      return make_contiguous_reader(std::move(*storage), info, where);
    }
    if (auto slabs =
            find_chunk_slabs(dcpl.get(), file_type.get(), memory_type.get(), info, where)) {
      return make_chunk_slab_reader(std::move(file), std::move(dataset), std::move(*slabs), info,
                                    where);
    }
    return make_h5_block_reader(std::move(file), std::move(dataset), std::move(memory_type), info,
                                plan, where);
  }

 private:
  const tensor_info& tensor_at(std::size_t index) const {
    if (index >= infos_.size()) {
      throw error(path_,
                  fmt::format("no tensor number {}: the file holds {}", index, infos_.size()));
    }
    return infos_[index];
  }

  nlohmann::json read_attributes_isolated() const {
    std::uint64_t file_bytes = check_path(path_);
    nlohmann::json names = nlohmann::json::array();
    for (const auto& info : infos_) names.push_back(info.name);
    auto request =
        nlohmann::json::to_msgpack({{"kind", "attributes"}, {"path", path_}, {"names", names}});
    auto bytes = hdf5_helper().call(request, path_, "reading the attributes",
                                    attributes_cpu_seconds(file_bytes, infos_.size()));
    auto all = nlohmann::json::from_msgpack(bytes, true, false);
    if (!all.is_array() || all.size() != infos_.size()) {
      throw error(path_, "the helper process sent malformed attributes");
    }
    return all;
  }

  std::string path_;
  std::vector<tensor_info> infos_;
  std::vector<bool> null_space_;
  std::mutex attributes_mutex_;
  std::optional<nlohmann::json> attributes_;
  std::exception_ptr attributes_failure_;
};

}  // namespace

std::unique_ptr<tensor_source> open_hdf5_source(const std::string& path) {
  return std::make_unique<hdf5_source>(path);
}

}  // namespace featpool::detail
