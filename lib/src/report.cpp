#include "featpool/report.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "featpool/inspect.hpp"
#include "featpool/text_table.hpp"
#include "featpool/version.hpp"

namespace featpool {
namespace {

std::string source_text(const report_record& r) {
  if (!r.reference.empty()) return r.reference;
  return r.name ? r.file + ":" + *r.name : r.file;
}

std::string shape_change(const report_record& r) {
  std::string text = r.name ? shape_text(r.input_shape) : "-";
  if (r.output_shape) text += " → " + shape_text(*r.output_shape);
  return text;
}

std::string dtype_change(const report_record& r) {
  std::string text = r.input_dtype.empty() ? "-" : r.input_dtype;
  if (r.output_dtype) text += " → " + *r.output_dtype;
  return text;
}

std::string align(const std::vector<std::vector<std::string>>& rows) {
  std::string out;
  for (const auto& line : aligned_lines(rows)) out += line + '\n';
  return out;
}

std::string totals_line(const report_totals& t) {
  return fmt::format("{} ok, {} skipped, {} failed\n", t.ok, t.skipped, t.failed);
}

// One size as --size writes it: 2x2, _x7.
std::string size_text(const std::vector<std::optional<std::uint64_t>>& size) {
  std::string text;
  for (const auto& s : size) {
    if (!text.empty()) text += 'x';
    text += s ? std::to_string(*s) : "_";
  }
  return text;
}

// The message, or for a pyramid pooled without one, its levels: the shape
// column shows only their concatenation.
std::string message_text(const report_record& r) {
  if (!r.message.empty() || r.pyramid.empty()) return r.message;
  std::string levels;
  for (const auto& level : r.pyramid) levels += (levels.empty() ? "" : ", ") + size_text(level);
  return "pyramid " + levels;
}

std::vector<std::string> row_of(const report_record& r) {
  return {source_text(r), shape_change(r), dtype_change(r),
          std::string(tensor_status_name(r.status)), message_text(r)};
}

nlohmann::ordered_json size_json(const std::vector<std::optional<std::uint64_t>>& size) {
  auto json = nlohmann::ordered_json::array();
  for (const auto& s : size) json.push_back(s ? nlohmann::ordered_json(*s) : nullptr);
  return json;
}

}  // namespace

std::string_view tensor_status_name(tensor_status status) {
  switch (status) {
    case tensor_status::ok:
      break;
    case tensor_status::skipped:
      return "skipped";
    case tensor_status::failed:
      return "failed";
  }
  return "ok";
}

report_totals count_statuses(const std::vector<report_record>& records) {
  report_totals totals;
  for (const auto& r : records) {
    if (r.status == tensor_status::ok) ++totals.ok;
    if (r.status == tensor_status::skipped) ++totals.skipped;
    if (r.status == tensor_status::failed) ++totals.failed;
  }
  return totals;
}

nlohmann::ordered_json report_json(const std::vector<report_record>& records) {
  auto tensors = nlohmann::ordered_json::array();
  for (const auto& r : records) {
    // A pyramid's size is its levels, each an array.
    auto size = size_json(r.size);
    if (!r.pyramid.empty()) {
      size = nlohmann::ordered_json::array();
      for (const auto& level : r.pyramid) size.push_back(size_json(level));
    }
    tensors.push_back({
        {"file", r.file},
        {"name", r.name ? nlohmann::ordered_json(*r.name) : nullptr},
        {"input_shape", r.input_shape},
        {"input_dtype", r.input_dtype},
        {"layout", r.layout},
        {"op", r.op},
        {"size", size},
        {"output_shape", r.output_shape ? nlohmann::ordered_json(*r.output_shape) : nullptr},
        {"output_dtype", r.output_dtype ? nlohmann::ordered_json(*r.output_dtype) : nullptr},
        {"destination", r.destination ? nlohmann::ordered_json(*r.destination) : nullptr},
        {"status", tensor_status_name(r.status)},
        {"message", r.message},
        {"elapsed_ms", r.elapsed_ms},
    });
  }
  auto totals = count_statuses(records);
  return {
      {"featpool_version", kVersion},
      {"tensors", std::move(tensors)},
      {"totals", {{"ok", totals.ok}, {"skipped", totals.skipped}, {"failed", totals.failed}}},
  };
}

std::string report_text(const std::vector<report_record>& records, bool summarize) {
  auto totals = count_statuses(records);
  if (!summarize) {
    std::vector<std::vector<std::string>> rows{{"SOURCE", "SHAPE", "DTYPE", "STATUS", "MESSAGE"}};
    for (const auto& r : records) rows.push_back(row_of(r));
    return (records.empty() ? std::string() : align(rows)) + totals_line(totals);
  }
  // Counts by status and shape change, in order of first appearance; every
  // failure is still listed on its own.
  std::vector<std::vector<std::string>> groups{{"COUNT", "SHAPE", "DTYPE", "STATUS", "MESSAGE"}};
  std::map<std::vector<std::string>, std::size_t> group_of;
  std::vector<std::size_t> counts;
  std::vector<std::vector<std::string>> failures{{"SOURCE", "SHAPE", "DTYPE", "STATUS", "MESSAGE"}};
  for (const auto& r : records) {
    if (r.status == tensor_status::failed) {
      failures.push_back(row_of(r));
      continue;
    }
    std::vector<std::string> key{shape_change(r), dtype_change(r),
                                 std::string(tensor_status_name(r.status)), message_text(r)};
    auto [it, inserted] = group_of.emplace(key, counts.size());
    if (inserted) {
      counts.push_back(0);
      key.insert(key.begin(), "");
      groups.push_back(std::move(key));
    }
    ++counts[it->second];
  }
  for (std::size_t g = 0; g < counts.size(); ++g) groups[g + 1][0] = std::to_string(counts[g]);
  std::string out = align(groups);
  if (failures.size() > 1) {
    out += '\n';
    out += align(failures);
  }
  return out + totals_line(totals);
}

}  // namespace featpool
