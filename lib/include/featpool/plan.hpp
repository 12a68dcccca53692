#pragma once
// Planning a pool run: every selected tensor gets its layout, output shape,
// dtype and destination, and every problem that can be found without
// reading data (misfits, collisions, existing outputs, outputs that are
// inputs) is found here, before any work starts.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "featpool/batch.hpp"
#include "featpool/discover.hpp"
#include "featpool/pool.hpp"
#include "featpool/report.hpp"

namespace featpool {

enum class output_kind { file, directory, standard_output };

struct output_target {
  output_kind kind = output_kind::file;
  std::string path;
  output_format format = output_format::npy;  // for files; for directories, --format if given
  bool format_forced = false;
};

// Tells the output's kind from its name: "-", a directory (existing, or
// ending in '/'), or a file by extension. Throws usage_error otherwise.
output_target classify_output(const std::string& output, std::optional<output_format> forced);

struct planned_input {
  input_file input;
  std::string relative_stem;              // the path without extension, relative to its directory
                                          // argument, or for file arguments to their common parent
  bool holds_many = false;                // NPZ and HDF5 hold named tensors; NPY holds one
  std::unique_ptr<tensor_source> stream;  // kept open: a stream can be read only once
};

struct planned_tensor {
  std::optional<std::size_t> input;  // index into plan::inputs; empty for a failed argument
  std::size_t tensor_index = 0;      // index into the source's tensors()
  tensor_info info;
  pool_request request;
  bool flatten = false;
  std::string output_path;  // the file it is written to ("-" for stdout)
  output_format output_as = output_format::npy;
  std::string output_name;   // the dataset or member name inside it
  std::string indices_name;  // with --indices, the name of its argmax tensor beside it
  report_record record;      // status ok unless planning found a problem
};

struct plan {
  output_target target;
  std::vector<planned_input> inputs;
  std::vector<planned_tensor> tensors;  // in input order
  std::size_t discovered_files = 0;     // before --shard narrowed `inputs`

  bool has_failures() const;
};

plan make_plan(const pool_options& options);

}  // namespace featpool
