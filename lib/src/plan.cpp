#include "featpool/plan.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "featpool/bfloat16.hpp"
#include "featpool/error.hpp"
#include "featpool/file_identity.hpp"
#include "featpool/inspect.hpp"
#include "featpool/interrupt.hpp"
#include "featpool/naming.hpp"
#include "featpool/shard.hpp"

namespace featpool {
namespace fs = std::filesystem;
namespace {

// A CSV row takes a sample of at most two axes (a (C, L) sample of an NCL
// tensor, say); deeper ones are most likely a forgotten --flatten.
constexpr std::size_t kMaxRowAxes = 2;

report_record failed_argument(const std::string& file, const std::string& reason) {
  report_record record;
  record.file = file;
  record.status = tensor_status::failed;
  record.message = reason;
  return record;
}

class planner {
 public:
  explicit planner(const pool_options& options) : options_(options) {
    plan_.target = classify_output(options.output, options.format);
  }

  plan run() {
    discover();
    assign_relative_stems();
    // Names depend on every discovered file, never on the shard.
    plan_.discovered_files = plan_.inputs.size();
    if (options_.shard) keep_shard(*options_.shard);
    for (std::size_t i = 0; i < plan_.inputs.size(); ++i) {
      check_interrupt();  // listing thousands of files takes a while
      list_input(i);
    }
    assign_destinations();
    find_collisions();
    check_existing_outputs();
    return std::move(plan_);
  }

 private:
  void discover() {
    for (const auto& argument : options_.inputs) {
      try {
        for (auto& file : expand_input(argument)) {
          plan_.inputs.push_back(planned_input{std::move(file), {}, false, nullptr});
        }
      } catch (const error& failure) {
        add_failure(failed_argument(failure.file(), failure.reason()));
      }
    }
  }

  void assign_relative_stems() {
    std::vector<input_file> files;
    for (const auto& in : plan_.inputs) files.push_back(in.input);
    auto stems = relative_stems(files);
    for (std::size_t i = 0; i < stems.size(); ++i) plan_.inputs[i].relative_stem = stems[i];
  }

  // Files that could map to the same mirrored output (same path without
  // extension) form one group, so a collision is always seen by one
  // process. A failed argument is reported by shard 1 alone, so merged
  // reports count it once.
  void keep_shard(const shard_spec& shard) {
    std::map<std::string, std::size_t> group_of_stem;
    std::vector<std::uint64_t> weights;
    std::vector<std::size_t> group_of_input;
    for (const auto& in : plan_.inputs) {
      auto [it, fresh] = group_of_stem.emplace(in.relative_stem, weights.size());
      if (fresh) weights.push_back(0);
      struct stat st {};
      if (!in.input.stream && ::stat(in.input.path.c_str(), &st) == 0) {
        weights[it->second] += static_cast<std::uint64_t>(st.st_size);
      }
      group_of_input.push_back(it->second);
    }
    auto shard_of = assign_shards(weights, shard.count);
    std::vector<planned_input> kept;
    for (std::size_t i = 0; i < plan_.inputs.size(); ++i) {
      if (shard_of[group_of_input[i]] == shard.index) kept.push_back(std::move(plan_.inputs[i]));
    }
    plan_.inputs = std::move(kept);
    if (shard.index != 1) plan_.tensors.clear();
  }

  void list_input(std::size_t index) {
    auto& planned = plan_.inputs[index];
    const auto& input = planned.input;
    std::vector<tensor_info> tensors;
    std::vector<std::size_t> selected;
    try {
      auto source = open_input(input);
      tensors = source->tensors();
      selected = select_tensors(tensors, input, options_.name_globs);
      if (input.stream) planned.stream = std::move(source);
    } catch (const error& failure) {
      auto record = failed_argument(input.display, failure.reason());
      // A failure about one tensor of the file (an NPZ member) names it.
      if (!failure.tensor().empty()) record.reference = input.display + ":" + failure.tensor();
      add_failure(std::move(record));
      return;
    }
    // Pooling a file given by itself asks for its tensors: a file without
    // any (a zip archive holding no NPY data, an HDF5 file without
    // datasets) would otherwise end "done" with nothing written.
    if (tensors.empty() && !input.selector && input.root.empty()) {
      add_failure(failed_argument(input.display, "no tensors in the file: nothing to pool"));
      return;
    }
    planned.holds_many = !tensors.empty() && tensors.front().format != file_format::npy;
    bool literal = input.selector && !is_glob(*input.selector);
    bool sole =
        !input.selector && input.root.empty() && tensors.size() == 1 && options_.name_globs.empty();
    for (auto t : selected) {
      auto info = tensors[t];
      info.file = input.display;
      plan_tensor(index, t, std::move(info), literal || sole);
    }
  }

  void plan_tensor(std::size_t input, std::size_t tensor_index, tensor_info info,
                   bool named_explicitly) {
    // Reports show the stored dtype (dtype_string); pooling sees bfloat16
    // as the float32 it is widened to.
    info = computed_info(std::move(info));
    planned_tensor p;
    p.input = input;
    p.tensor_index = tensor_index;
    auto& r = p.record;
    r.file = info.file;
    r.name = info.name;
    r.reference = tensor_reference(info);
    r.input_shape = info.shape;
    r.input_dtype = info.dtype_string;
    r.op = std::string(pool_op_name(options_.op));
    r.size = options_.sizes.front().sizes;
    // A CSV row is one sample's values in the layout's order: what
    // --flatten gives, (N, K) or (K).
    p.flatten = options_.flatten || writes_rows();
    // A selected tensor that does not fit is skipped; one named explicitly
    // is an error, since the user asked for exactly that tensor.
    auto misfit = [&](std::string reason) {
      r.status = named_explicitly ? tensor_status::failed : tensor_status::skipped;
      r.message = std::move(reason);
    };
    std::optional<layout> axes = options_.axes ? options_.axes : default_layout(info.shape.size());
    if (axes) r.layout = axes->letters;
    if (!info.numeric()) {
      misfit(fmt::format("dtype {} is not numeric", info.dtype_string));
    } else if (!axes) {
      misfit(fmt::format("rank {} has no default layout; pass --layout", info.shape.size()));
    } else if (axes->rank() != info.shape.size()) {
      misfit(fmt::format("rank {} does not fit layout {}", info.shape.size(), axes->letters));
    } else if (options_.op == pool_op::catavgmax && !axes->channel_axis) {
      misfit(fmt::format("catavgmax needs a C axis to concatenate on; layout {} has none",
                         axes->letters));
    } else {
      plan_fitting(p, *axes, info);
    }
    p.info = std::move(info);
    plan_.tensors.push_back(std::move(p));
  }

  void plan_fitting(planned_tensor& p, const layout& axes, const tensor_info& info) {
    auto& r = p.record;
    std::vector<std::uint64_t> lengths;
    for (auto l : axes.spatial_axes) {
      if (info.shape[l] == 0) {
        r.status = tensor_status::failed;
        r.message = fmt::format("spatial axis {} has length 0", axes.letters[l]);
        return;
      }
      lengths.push_back(info.shape[l]);
    }
    std::vector<std::vector<std::uint64_t>> levels;
    for (const auto& size : options_.sizes) {
      std::string reason;
      auto out_spatial = resolve_size(size, lengths, reason);
      if (!out_spatial) {
        r.status = tensor_status::failed;
        r.message = reason;
        return;
      }
      levels.push_back(std::move(*out_spatial));
    }
    r.size.assign(levels.front().begin(), levels.front().end());
    p.request = pool_request{
        options_.op,
        axes,
        levels.front(),
        pooled_dtype(options_.op, *info.type, options_.output_type, options_.normalize),
        options_.jobs,
        options_.gem.value_or(gem_params{})};
    p.request.lse_r = options_.lse_r.value_or(kDefaultLseR);
    p.request.indices = options_.indices;
    if (levels.size() > 1) {
      for (const auto& level : levels) r.pyramid.emplace_back(level.begin(), level.end());
      p.request.pyramid = std::move(levels);
      p.flatten = false;  // a pyramid's output is flat already
    }
    if (options_.normalize) {
      bool whole_samples = options_.flatten || !p.request.pyramid.empty();
      if (!whole_samples && !axes.channel_axis) {
        r.status = tensor_status::failed;
        r.message = fmt::format(
            "--normalize l2 normalizes along C, and layout {} has none; with --flatten it "
            "normalizes each sample's output",
            axes.letters);
        return;
      }
      p.request.normalize = whole_samples ? normalization::samples : normalization::channels;
    }
    auto shape = pooled_shape(info.shape, p.request);
    // Multiply with overflow checks: a huge --size must be refused, not wrap.
    // Indices are int64, whatever the values' dtype, and held as long.
    std::uint64_t bytes = dtype_size(p.request.output_type);
    if (options_.indices) bytes = std::max(bytes, dtype_size(dtype::int64));
    for (auto extent : shape) {
      if (__builtin_mul_overflow(bytes, extent, &bytes)) bytes = UINT64_MAX;
    }
    if (bytes > kMaxPooledBytes) {
      r.status = tensor_status::failed;
      r.message =
          bytes == UINT64_MAX
              ? "the pooled output would be over the 4 GiB limit"
              : fmt::format("the pooled output would be {} bytes, over the 4 GiB limit", bytes);
      return;
    }
    // A pyramid's samples are flat already.
    if (writes_rows() && !options_.flatten && p.request.pyramid.empty()) {
      auto sample = shape;
      if (axes.batch_axis)
        sample.erase(sample.begin() + static_cast<std::ptrdiff_t>(*axes.batch_axis));
      if (sample.size() > kMaxRowAxes) {
        r.status = tensor_status::failed;
        r.message = fmt::format(
            "a row of {} holds a sample of at most {} axes, and this tensor's samples are {}; "
            "pass --flatten to write each as one row of {} values",
            plan_.target.path, kMaxRowAxes, shape_text(sample),
            flattened_shape(shape, axes).back());
        return;
      }
    }
    if (p.flatten) shape = flattened_shape(shape, axes);
    r.output_shape = shape;
    r.output_dtype = std::string(dtype_name(p.request.output_type));
  }

  // CSV and TSV outputs: one row per sample.
  bool writes_rows() const {
    return plan_.target.kind == output_kind::file && holds_rows(plan_.target.format);
  }

  void assign_destinations() {
    const auto& target = plan_.target;
    std::map<std::size_t, std::size_t> pooled_per_input;
    for (const auto& p : plan_.tensors) {
      if (p.input && p.record.status == tensor_status::ok) ++pooled_per_input[*p.input];
    }
    for (auto& p : plan_.tensors) {
      if (!p.input || p.record.status != tensor_status::ok) continue;
      const auto& in = plan_.inputs[*p.input];
      std::optional<std::string> name;  // of a tensor that is written under one
      if (target.kind == output_kind::directory) {
        // With its indices, a file's one pooled tensor is two.
        bool one_tensor = pooled_per_input[*p.input] == 1 && !options_.indices;
        output_format format = target.format_forced ? target.format
                               : one_tensor         ? output_format::npy
                                                    : output_format::hdf5;
        p.output_as = format;
        p.output_path =
            (fs::path(target.path) / (in.relative_stem + extension_of(format))).string();
        name = p.info.name;
      } else if (holds_rows(target.format)) {
        // Rows are labelled with their tensor as the report names it.
        p.output_as = target.format;
        p.output_path = target.path;
        p.output_name = tensor_reference(p.info);
      } else {
        p.output_as = target.format;
        p.output_path = target.path;
        name = collected_name(in.relative_stem, in.holds_many, p.info.name, plan_.discovered_files);
      }
      if (name) {
        p.output_name = name_in(p.output_as, *name);
        if (options_.indices) p.indices_name = name_in(p.output_as, indices_name(*name));
      }
      bool named_inside = p.output_as == output_format::npz || p.output_as == output_format::hdf5 ||
                          p.output_as == output_format::safetensors;
      p.record.destination = named_inside ? p.output_path + ":" + p.output_name : p.output_path;
    }
  }

  // Every pair of tensors that would land on the same name, all at once;
  // also NPY outputs given more than one tensor, HDF5 names where one
  // would have to be both a dataset and a group, and CSV rows of different
  // widths or from one tensor twice.
  void find_collisions() {
    std::map<std::string, std::vector<std::size_t>> per_file;
    for (std::size_t i = 0; i < plan_.tensors.size(); ++i) {
      const auto& p = plan_.tensors[i];
      if (!p.input || p.record.status != tensor_status::ok) continue;
      per_file[p.output_path].push_back(i);
    }
    for (auto& [path, members] : per_file) {
      const auto& first = plan_.tensors[members.front()];
      if (holds_rows(first.output_as)) {
        check_rows(path, members);
        continue;
      }
      if (first.output_as == output_format::npy && members.size() > 1) {
        for (auto i : members) {
          collide(i, fmt::format("{} is an NPY file, which takes one tensor, and {} go to it", path,
                                 members.size()));
        }
        continue;
      }
      // Every name a tensor takes in the file: its own, and its indices'.
      std::vector<std::string> names;
      std::vector<named_output> owners;
      for (auto i : members) {
        const auto& p = plan_.tensors[i];
        names.push_back(p.output_name);
        owners.push_back({i, false});
        if (p.indices_name.empty()) continue;
        names.push_back(p.indices_name);
        owners.push_back({i, true});
      }
      for (const auto& clash : find_name_clashes(names, first.output_as == output_format::hdf5)) {
        const auto& a = owners[clash.first];
        const auto& b = owners[clash.second];
        if (clash.group) {
          collide(a.tensor, fmt::format("output name {} would have to be a dataset and a group, "
                                        "as {} is inside it",
                                        names[clash.first], names[clash.second]));
          continue;
        }
        const auto where = fmt::format("{}:{}", path, names[clash.first]);
        collide(b.tensor, fmt::format("output name {} is also the name of {}", where, owner(a)));
        collide(a.tensor, fmt::format("output name {} is also the name of {}", where, owner(b)));
      }
    }
  }

  // A name in an output file, and whose it is.
  struct named_output {
    std::size_t tensor;  // index into plan::tensors
    bool indices;        // the name of its --indices
  };

  std::string owner(const named_output& name) const {
    auto reference = tensor_reference(plan_.tensors[name.tensor].info);
    return name.indices ? "the indices of " + reference : reference;
  }

  // One CSV header fits every row only if all tensors have as many values
  // per sample as the first; and a tensor given twice would repeat its
  // rows under the same labels.
  void check_rows(const std::string& path, const std::vector<std::size_t>& members) {
    std::vector<std::string> labels;
    for (auto i : members) labels.push_back(plan_.tensors[i].output_name);
    for (const auto& clash : find_name_clashes(labels, false)) {
      for (auto i : {members[clash.first], members[clash.second]}) {
        collide(i, fmt::format("{} is given twice: its rows would be in {} twice",
                               labels[clash.first], path));
      }
    }
    const auto& first = plan_.tensors[members.front()];
    auto width = first.record.output_shape->back();
    for (auto i : members) {
      auto own = plan_.tensors[i].record.output_shape->back();
      if (own == width) continue;
      collide(i, fmt::format("has {} features per row, but {}, the first in {}, has {}", own,
                             first.output_name, path, width));
    }
  }

  void collide(std::size_t i, std::string message) {
    auto& r = plan_.tensors[i].record;
    r.status = tensor_status::failed;
    r.message = std::move(message);
  }

  enum class existing { none, input, other };

  // What is at an output path already. Inputs are looked at only once some
  // output exists, so a fresh batch costs one lstat per output file.
  existing what_exists(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return existing::none;
    if (!input_identities_) {
      input_identities_.emplace();
      for (const auto& in : plan_.inputs) {
        if (in.input.stream) continue;
        if (auto id = identity_of(in.input.path)) input_identities_->insert(*id);
      }
    }
    auto id = identity_of(path);  // through symlinks, as opening it would go
    return id && input_identities_->count(*id) ? existing::input : existing::other;
  }

  void check_existing_outputs() {
    std::map<std::string, existing> at_path;
    for (auto& p : plan_.tensors) {
      if (!p.input || p.record.status != tensor_status::ok || p.output_path == "-") continue;
      auto [it, fresh] = at_path.emplace(p.output_path, existing::none);
      if (fresh) it->second = what_exists(p.output_path);
      auto& r = p.record;
      if (it->second == existing::none) continue;
      if (it->second == existing::input) {
        r.status = tensor_status::failed;
        r.message = fmt::format("output {} is one of the inputs", p.output_path);
      } else if (options_.skip_existing) {
        r.status = tensor_status::skipped;
        r.message = "output exists";
      } else if (!options_.force) {
        r.status = tensor_status::failed;
        r.message = fmt::format("output {} exists; pass --force to overwrite it", p.output_path);
      }
    }
  }

  void add_failure(report_record record) {
    record.op = std::string(pool_op_name(options_.op));
    record.size = options_.sizes.front().sizes;
    planned_tensor p;
    p.record = std::move(record);
    plan_.tensors.push_back(std::move(p));
  }

  const pool_options& options_;
  plan plan_;
  std::optional<std::set<file_identity>> input_identities_;
};

}  // namespace

output_target classify_output(const std::string& output, std::optional<output_format> forced) {
  output_target target;
  target.path = output;
  if (output == "-") {
    target.kind = output_kind::standard_output;
    return target;
  }
  std::error_code ec;
  if (output.ends_with('/') || fs::is_directory(output, ec)) {
    target.kind = output_kind::directory;
    if (forced) {
      target.format = *forced;
      target.format_forced = true;
    }
    return target;
  }
  auto extension = fs::path(output).extension().string();
  if (extension == ".npy") {
    target.format = output_format::npy;
  } else if (extension == ".npz") {
    target.format = output_format::npz;
  } else if (extension == ".h5" || extension == ".hdf5") {
    target.format = output_format::hdf5;
  } else if (extension == ".csv") {
    target.format = output_format::csv;
  } else if (extension == ".tsv") {
    target.format = output_format::tsv;
  } else if (extension == ".safetensors") {
    target.format = output_format::safetensors;
  } else {
    throw usage_error(fmt::format(
        "-o: '{}': unknown output extension; use .npy, .npz, .h5, .hdf5, .safetensors, .csv, .tsv, "
        "a directory or -",
        output));
  }
  if (forced) throw usage_error("--format applies only to directory outputs");
  return target;
}

bool plan::has_failures() const {
  return std::any_of(tensors.begin(), tensors.end(), [](const planned_tensor& p) {
    return p.record.status == tensor_status::failed;
  });
}

plan make_plan(const pool_options& options) { return planner(options).run(); }

}  // namespace featpool
