#include "featpool/report.hpp"

#include <doctest/doctest.h>

#include "featpool/version.hpp"

namespace featpool {
namespace {

report_record record(std::string name, tensor_status status, std::string message = {}) {
  report_record r;
  r.file = "f.h5";
  r.name = std::move(name);
  r.input_shape = {2, 8, 7, 7};
  r.input_dtype = "float32";
  r.layout = "NCHW";
  r.op = "avg";
  r.size = {1, 1};
  if (status == tensor_status::ok) {
    r.output_shape = std::vector<std::uint64_t>{2, 8, 1, 1};
    r.output_dtype = "float32";
    r.destination = "o.h5:/" + *r.name;
  }
  r.status = status;
  r.message = std::move(message);
  return r;
}

TEST_CASE("report: text rows are aligned, arrows count as one column") {
  std::vector<report_record> records{record("/a", tensor_status::ok),
                                     record("/labels", tensor_status::skipped, "rank 1")};
  records[1].input_shape = {2};
  records[1].input_dtype = "int64";
  CHECK(report_text(records, false) ==
        "SOURCE        SHAPE                        DTYPE              STATUS   MESSAGE\n"
        "f.h5:/a       (2, 8, 7, 7) → (2, 8, 1, 1)  float32 → float32  ok\n"
        "f.h5:/labels  (2,)                         int64              skipped  rank 1\n"
        "1 ok, 1 skipped, 0 failed\n");
}

TEST_CASE("report: a summary counts rows by shape change and lists every failure") {
  std::vector<report_record> records;
  for (int i = 0; i < 60; ++i)
    records.push_back(record("/t" + std::to_string(i), tensor_status::ok));
  records.push_back(record("/bad", tensor_status::failed, "truncated data"));
  auto text = report_text(records, true);
  CHECK(text ==
        "COUNT  SHAPE                        DTYPE              STATUS  MESSAGE\n"
        "60     (2, 8, 7, 7) → (2, 8, 1, 1)  float32 → float32  ok\n"
        "\n"
        "SOURCE     SHAPE         DTYPE    STATUS  MESSAGE\n"
        "f.h5:/bad  (2, 8, 7, 7)  float32  failed  truncated data\n"
        "60 ok, 0 skipped, 1 failed\n");
}

TEST_CASE("report: JSON has exactly SPEC's keys, nulls where nothing is known") {
  report_record failed_file;
  failed_file.file = "broken.h5";
  failed_file.status = tensor_status::failed;
  failed_file.message = "not an HDF5 file";
  auto json = report_json({record("/a", tensor_status::ok), failed_file});
  CHECK(json["featpool_version"] == kVersion);
  CHECK(json["totals"].dump() == R"({"ok":1,"skipped":0,"failed":1})");
  auto keys = [](const nlohmann::ordered_json& object) {
    std::vector<std::string> out;
    for (const auto& [key, value] : object.items()) out.push_back(key);
    return out;
  };
  const std::vector<std::string> expected{
      "file",         "name",         "input_shape", "input_dtype", "layout",  "op",        "size",
      "output_shape", "output_dtype", "destination", "status",      "message", "elapsed_ms"};
  CHECK(keys(json["tensors"][0]) == expected);
  CHECK(keys(json["tensors"][1]) == expected);
  CHECK(json["tensors"][1]["name"].is_null());
  CHECK(json["tensors"][1]["output_shape"].is_null());
  CHECK(json["tensors"][0]["size"].dump() == "[1,1]");
}

}  // namespace
}  // namespace featpool
