#include "featpool/inspect.hpp"

#include <algorithm>
#include <ostream>

#include <fmt/format.h>

#include "featpool/bfloat16.hpp"
#include "featpool/discover.hpp"
#include "featpool/error.hpp"
#include "featpool/exit_code.hpp"
#include "featpool/sink.hpp"
#include "featpool/text_table.hpp"

namespace featpool {
namespace {

// --hist implies --stats: the histogram's bins lie between the min and max.
bool with_stats(const inspect_options& options) { return options.stats || options.hist; }

std::string number_text(const std::optional<double>& value) {
  return value ? fmt::format("{:.6g}", *value) : "-";
}

nlohmann::json optional_number(const std::optional<double>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

std::string attribute_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The rows aligned, each followed by its trailer lines (attributes).
std::string aligned(const std::vector<std::vector<std::string>>& rows,
                    const std::vector<std::vector<std::string>>& trailers) {
  std::string out;
  auto lines = aligned_lines(rows);
  for (std::size_t r = 0; r < lines.size(); ++r) {
    out += lines[r] + '\n';
    for (const auto& trailer : trailers[r]) out += trailer + '\n';
  }
  return out;
}

// A JSON array with one element a line: valid JSON for any parser, and
// still readable and greppable in a terminal. File names that are not
// UTF-8 get replacement characters rather than an exception.
std::string json_lines(const nlohmann::ordered_json& array) {
  if (array.empty()) return "[]\n";
  std::string out = "[\n";
  for (std::size_t i = 0; i < array.size(); ++i) {
    out += "  " + array[i].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out += i + 1 < array.size() ? ",\n" : "\n";
  }
  return out + "]\n";
}

}  // namespace

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  if (shape.size() == 1) return fmt::format("({},)", shape[0]);
  return fmt::format("({})", fmt::join(shape, ", "));
}

std::string render_inspect_text(const std::vector<inspected_tensor>& tensors,
                                const inspect_options& options) {
  if (tensors.empty()) return {};
  std::vector<std::vector<std::string>> rows;
  std::vector<std::vector<std::string>> trailers;
  std::vector<std::string> header{"TENSOR", "SHAPE", "DTYPE", "ENDIAN", "ORDER", "BYTES"};
  if (with_stats(options)) header.insert(header.end(), {"MIN", "MAX", "MEAN", "STD", "NAN", "INF"});
  header.insert(header.end(), {"CHUNKS", "FILTERS"});
  // Last, so that no column of a listing without it moves.
  if (options.hist) header.push_back("HIST");
  rows.push_back(header);
  trailers.emplace_back();
  for (const auto& tensor : tensors) {
    const auto& info = tensor.info;
    std::vector<std::string> row{tensor_reference(info),
                                 shape_text(info.shape),
                                 info.dtype_string,
                                 std::string(byte_order_name(info.stored_byte_order)),
                                 info.order == memory_order::c ? "C" : "F",
                                 std::to_string(info.nbytes)};
    if (with_stats(options)) {
      if (tensor.stats) {
        const auto& s = *tensor.stats;
        row.insert(row.end(),
                   {number_text(s.min), number_text(s.max), number_text(s.mean), number_text(s.std),
                    std::to_string(s.nan_count), std::to_string(s.inf_count)});
      } else {
        row.insert(row.end(), 6, "-");
      }
    }
    row.push_back(info.chunks ? shape_text(*info.chunks) : "-");
    row.push_back(info.filters.empty() ? "-" : fmt::format("{}", fmt::join(info.filters, ",")));
    if (options.hist) row.push_back(tensor.hist ? histogram_bars(*tensor.hist) : "-");
    rows.push_back(std::move(row));
    std::vector<std::string> attribute_lines;
    if (options.attrs && tensor.attributes.is_object()) {
      for (const auto& [key, value] : tensor.attributes.items()) {
        attribute_lines.push_back(fmt::format("    @{} = {}", key, attribute_text(value)));
      }
    }
    trailers.push_back(std::move(attribute_lines));
  }
  return aligned(rows, trailers);
}

nlohmann::ordered_json render_inspect_json(const std::vector<inspected_tensor>& tensors,
                                           const inspect_options& options) {
  auto out = nlohmann::ordered_json::array();
  for (const auto& tensor : tensors) {
    const auto& info = tensor.info;
    nlohmann::ordered_json record{
        {"file", info.file},
        {"name", info.name},
        {"format", file_format_name(info.format)},
        {"shape", info.shape},
        {"dtype", info.dtype_string},
        {"numeric", info.numeric()},
        {"byte_order", byte_order_name(info.stored_byte_order)},
        {"order", info.order == memory_order::c ? "C" : "F"},
        {"nbytes", info.nbytes},
        {"chunks", info.chunks ? nlohmann::json(*info.chunks) : nlohmann::json(nullptr)},
        {"filters", info.filters},
    };
    // Where a safetensors tensor lies, from the data's start.
    if (info.data_offsets) record["data_offsets"] = *info.data_offsets;
    if (with_stats(options)) {
      const auto* s = tensor.stats ? &*tensor.stats : nullptr;
      record["min"] = s ? optional_number(s->min) : nullptr;
      record["max"] = s ? optional_number(s->max) : nullptr;
      record["mean"] = s ? optional_number(s->mean) : nullptr;
      record["std"] = s ? optional_number(s->std) : nullptr;
      record["nan_count"] = s ? nlohmann::json(s->nan_count) : nullptr;
      record["inf_count"] = s ? nlohmann::json(s->inf_count) : nullptr;
      if (options.hist) record["hist"] = tensor.hist ? nlohmann::json(*tensor.hist) : nullptr;
    }
    if (options.attrs) {
      record["attrs"] =
          tensor.attributes.is_object() ? tensor.attributes : nlohmann::json::object();
    }
    out.push_back(std::move(record));
  }
  return out;
}

int run_inspect(const std::vector<std::string>& inputs, const inspect_options& options,
                std::ostream& out, std::ostream& errors) {
  int status = exit_code::ok;
  auto report = [&](const std::exception& failure) {
    errors << error_line(failure) << '\n';
    status = exit_code::failure;
  };
  std::vector<inspected_tensor> listed;
  for (const auto& argument : inputs) {
    std::vector<input_file> files;
    try {
      files = expand_input(argument);
    } catch (const error& failure) {
      report(failure);
      continue;
    }
    for (const auto& file : files) {
      try {
        auto source = open_input(file);
        const auto& tensors = source->tensors();
        for (auto index : select_tensors(tensors, file, options.name_globs)) {
          inspected_tensor tensor{tensors[index], std::nullopt, nullptr, std::nullopt};
          tensor.info.file = file.display;
          if (options.attrs) tensor.attributes = source->attributes(index);
          if (with_stats(options) && tensor.info.numeric()) {
            try {
              // Each reader is closed before the next opens (an NPZ member's
              // archive handle goes back to the pool).
              auto type = computed_type(*tensor.info.type);
              tensor.stats = compute_stats(*open_computed(*source, index), type);
              // The bins need the min and max first, so a second pass, which
              // a stream, read once, cannot give.
              const auto& s = *tensor.stats;
              if (options.hist && !file.stream && s.min) {
                tensor.hist =
                    compute_histogram(*open_computed(*source, index), type, *s.min, *s.max);
              }
            } catch (const error& failure) {
              report(failure);
            }
          }
          listed.push_back(std::move(tensor));
        }
      } catch (const error& failure) {
        report(failure);
      }
    }
  }
  try {
    write_standard_output(out, options.json ? json_lines(render_inspect_json(listed, options))
                                            : render_inspect_text(listed, options));
  } catch (const error& failure) {
    report(failure);
  }
  return status;
}

}  // namespace featpool
