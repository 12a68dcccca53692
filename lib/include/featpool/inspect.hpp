#pragma once
// `featpool inspect`: list every tensor of the inputs, as aligned text in the
// spirit of `h5ls -r`, or as JSON; optionally with statistics and HDF5
// attributes.

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "featpool/histogram.hpp"
#include "featpool/source.hpp"
#include "featpool/stats.hpp"

namespace featpool {

struct inspect_options {
  bool json = false;
  bool stats = false;
  bool hist = false;  // implies stats: the histogram's bins span their min and max
  bool attrs = false;
  std::vector<std::string> name_globs;  // --name
};

struct inspected_tensor {
  tensor_info info;
  std::optional<tensor_stats> stats;  // numeric tensors, with --stats
  nlohmann::json attributes;          // with --attrs: HDF5's by name, null elsewhere
  // With --hist: numeric tensors with a finite value, except streams, which
  // can be read only once.
  std::optional<histogram_counts> hist;
};

// Lists the tensors of every input on `out`. An input that fails is
// reported on `errors` in one line and the others are still listed; the
// result is the exit code.
int run_inspect(const std::vector<std::string>& inputs, const inspect_options& options,
                std::ostream& out, std::ostream& errors);

std::string render_inspect_text(const std::vector<inspected_tensor>& tensors,
                                const inspect_options& options);
nlohmann::ordered_json render_inspect_json(const std::vector<inspected_tensor>& tensors,
                                           const inspect_options& options);

// "(2, 3)" for a shape, "(5,)" for one axis and "()" for a scalar, as numpy
// prints shapes.
std::string shape_text(const std::vector<std::uint64_t>& shape);

}  // namespace featpool
