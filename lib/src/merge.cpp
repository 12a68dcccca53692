#include "featpool/merge.hpp"

#include <algorithm>
#include <csignal>
#include <map>
#include <optional>
#include <ostream>

#include <fmt/format.h>

#include "featpool/bfloat16.hpp"
#include "featpool/error.hpp"
#include "featpool/exit_code.hpp"
#include "featpool/interrupt.hpp"
#include "featpool/naming.hpp"
#include "featpool/plan.hpp"

namespace featpool {
namespace {

// One tensor to copy.
struct merge_entry {
  std::size_t file = 0;  // index into the discovered files
  std::size_t tensor = 0;
  tensor_info info;
  std::string name;  // in the output
};

// The featpool_* attributes of a pooled HDF5 dataset, carried over; none
// for tensors that have none (NPY and NPZ files).
std::optional<provenance> provenance_from(const nlohmann::json& attributes) {
  auto text = [&](const char* key) -> const std::string* {
    auto it = attributes.is_object() ? attributes.find(key) : attributes.end();
    return it != attributes.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
  };
  auto op = text("featpool_op"), size = text("featpool_size"), layout = text("featpool_layout"),
       source = text("featpool_source"), version = text("featpool_version");
  if (!op || !size || !layout || !source || !version) return std::nullopt;
  auto shape = attributes.find("featpool_input_shape");
  if (shape == attributes.end() || !shape->is_array()) return std::nullopt;
  provenance origin{*op, *size, *layout, *source, {}, *version};
  for (const auto& extent : *shape) {
    // h5py and featpool store shapes as int64.
    if (!extent.is_number_integer() || extent.get<std::int64_t>() < 0) return std::nullopt;
    origin.input_shape.push_back(extent.get<std::uint64_t>());
  }
  return origin;
}

// Fortran order is C order with the axes reversed: element i of the
// Fortran storage goes where its coordinates put it in C order.
byte_buffer to_c_order(const byte_buffer& fortran, const std::vector<std::uint64_t>& shape,
                       std::size_t item) {
  byte_buffer c(fortran.size());
  std::vector<std::uint64_t> c_strides(shape.size(), 1);
  for (std::size_t a = shape.size(); a-- > 1;) c_strides[a - 1] = c_strides[a] * shape[a];
  std::uint64_t count = item ? fortran.size() / item : 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t rest = i, offset = 0;
    for (std::size_t a = 0; a < shape.size(); ++a) {
      offset += rest % shape[a] * c_strides[a];
      rest /= shape[a];
    }
    std::copy_n(fortran.data() + i * item, item, c.data() + offset * item);
  }
  return c;
}

class merger {
 public:
  merger(const merge_options& options, console& io) : options_(options), io_(io) {}

  int run() {
    auto target = classify_output(options_.output, std::nullopt);
    bool collects = target.format == output_format::hdf5 || target.format == output_format::npz ||
                    target.format == output_format::safetensors;
    if (target.kind != output_kind::file || !collects) {
      throw usage_error(fmt::format(
          "-o: '{}': merge writes one file: use a .h5, .hdf5, .npz or .safetensors name",
          options_.output));
    }
    format_ = target.format;
    discover();
    list();
    find_clashes();
    check_output();
    if (!failures_.empty()) {
      for (const auto& line : failures_) io_.err << line << '\n';
      return exit_code::failure;
    }
    install_interrupt_handlers();
    try {
      copy();
    } catch (const interrupted& stop) {
      return stop.signal == SIGTERM ? exit_code::terminated : exit_code::interrupted;
    } catch (const error& failure) {
      io_.err << error_line(failure) << '\n';
      return exit_code::failure;
    }
    if (!options_.quiet) {
      io_.out << fmt::format("merged {} tensors from {} files into {}\n", entries_.size(),
                             files_.size(), options_.output);
    }
    return exit_code::ok;
  }

 private:
  void discover() {
    for (const auto& argument : options_.inputs) {
      try {
        for (auto& file : expand_input(argument)) files_.push_back(std::move(file));
      } catch (const error& failure) {
        failures_.push_back(error_line(failure));
      }
    }
  }

  void list() {
    auto stems = relative_stems(files_);
    for (std::size_t f = 0; f < files_.size(); ++f) {
      try {
        auto source = open_input(files_[f]);
        const auto& tensors = source->tensors();
        bool holds_many = !tensors.empty() && tensors.front().format != file_format::npy;
        for (auto t : select_tensors(tensors, files_[f], {})) {
          auto info = computed_info(tensors[t]);
          info.file = files_[f].display;
          if (!info.numeric()) {
            failures_.push_back(error_line(error(
                info.file, info.name, fmt::format("dtype {} is not numeric", info.dtype_string))));
            continue;
          }
          auto name =
              name_in(format_, collected_name(stems[f], holds_many, info.name, files_.size()));
          entries_.push_back({f, t, std::move(info), std::move(name)});
        }
        if (files_[f].stream) streams_.emplace(f, std::move(source));
      } catch (const error& failure) {
        failures_.push_back(error_line(failure));
      }
    }
  }

  void find_clashes() {
    std::vector<std::string> names;
    for (const auto& e : entries_) names.push_back(e.name);
    for (const auto& clash : find_name_clashes(names, format_ == output_format::hdf5)) {
      const auto& a = entries_[clash.first];
      const auto& b = entries_[clash.second];
      failures_.push_back(error_line(error(
          options_.output,
          clash.group
              ? fmt::format("{} ({}) would have to be a dataset and a group, as {} ({}) "
                            "is inside it",
                            a.name, tensor_reference(a.info), b.name, tensor_reference(b.info))
              : fmt::format("{} and {} would both be named {}", tensor_reference(a.info),
                            tensor_reference(b.info), a.name))));
    }
  }

  void check_output() {
    if (auto refusal = output_refusal(options_.output, files_, options_.force)) {
      failures_.push_back(error_line(error(options_.output, *refusal)));
    }
  }

  void copy() {
    auto sink = create_sink(format_, options_.output, options_.sync,
                            options_.force ? on_existing::replace : on_existing::refuse);
    std::unique_ptr<tensor_source> open;
    std::optional<std::size_t> open_file;
    for (const auto& e : entries_) {
      tensor_source* source = nullptr;
      if (auto stream = streams_.find(e.file); stream != streams_.end()) {
        source = stream->second.get();
      } else {
        if (open_file != e.file) {
          open = open_input(files_[e.file]);
          open_file = e.file;
        }
        source = open.get();
      }
      sink->write(e.name, read_whole(*source, e), provenance_from(source->attributes(e.tensor)));
    }
    sink->finish();
    sink->publish();
  }

  // Merged tensors are pooled outputs, held whole as pooling holds them.
  static pooled_tensor read_whole(tensor_source& source, const merge_entry& e) {
    if (e.info.nbytes > kMaxPooledBytes) {
      throw error(
          e.info.file, e.info.name,
          fmt::format("{} bytes, over the 4 GiB that merge holds in memory", e.info.nbytes));
    }
    pooled_tensor tensor;
    tensor.shape = e.info.shape;
    tensor.type = *e.info.type;
    tensor.data.reserve(e.info.nbytes);
    auto reader = open_computed(source, e.tensor);
    for (auto block = reader->next(); !block.empty(); block = reader->next()) {
      check_interrupt();
      tensor.data.insert(tensor.data.end(), block.begin(), block.end());
    }
    if (e.info.order == memory_order::fortran) {
      tensor.data = to_c_order(tensor.data, tensor.shape, dtype_size(tensor.type));
    }
    return tensor;
  }

  const merge_options& options_;
  console& io_;
  output_format format_ = output_format::hdf5;
  std::vector<input_file> files_;
  std::vector<merge_entry> entries_;
  std::map<std::size_t, std::unique_ptr<tensor_source>> streams_;  // read once, kept open
  std::vector<std::string> failures_;
};

}  // namespace

int run_merge(const merge_options& options, console& io) { return merger(options, io).run(); }

}  // namespace featpool
