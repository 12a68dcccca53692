#pragma once
// The shape report of `featpool pool`: one record per tensor, rendered as
// aligned text or as JSON (SPEC: "The shape report").

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace featpool {

enum class tensor_status { ok, skipped, failed };

std::string_view tensor_status_name(tensor_status status);

struct report_record {
  std::string file;
  std::optional<std::string> name;  // null when the file failed before its tensors were known
  std::vector<std::uint64_t> input_shape;
  std::string input_dtype;
  std::string layout;
  std::string op;
  std::vector<std::optional<std::uint64_t>> size;  // per spatial axis; null keeps the axis
  // A spatial pyramid's levels, each like `size`; empty without one.
  std::vector<std::vector<std::optional<std::uint64_t>>> pyramid;
  std::optional<std::vector<std::uint64_t>> output_shape;
  std::optional<std::string> output_dtype;
  std::optional<std::string> destination;
  tensor_status status = tensor_status::ok;
  std::string message;
  double elapsed_ms = 0;
  std::string reference;  // for the text report: FILE for NPY, FILE:NAME otherwise
};

struct report_totals {
  std::uint64_t ok = 0;
  std::uint64_t skipped = 0;
  std::uint64_t failed = 0;
};

report_totals count_statuses(const std::vector<report_record>& records);

nlohmann::ordered_json report_json(const std::vector<report_record>& records);

// More records than this are summarized on a terminal unless --verbose.
inline constexpr std::size_t kReportSummaryThreshold = 50;

// Aligned columns (source, input shape → output shape, dtype, status,
// message) and a totals line. `summarize` collapses the rows into counts by
// status and by shape change, still listing every failure.
std::string report_text(const std::vector<report_record>& records, bool summarize);

}  // namespace featpool
