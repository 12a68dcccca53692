#pragma once
// `featpool pool`: discover → plan → execute → report, with SPEC's error
// policy. The options are plain data so tests build them without CLI11.

#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "featpool/dtype.hpp"
#include "featpool/layout.hpp"
#include "featpool/pool.hpp"
#include "featpool/shard.hpp"
#include "featpool/sink.hpp"

namespace featpool {

enum class report_format { text, json };

struct pool_options {
  std::vector<std::string> inputs;
  std::string output;  // -o: a file, a directory, or "-"
  pool_op op = pool_op::avg;
  std::optional<gem_params> gem;                  // --p / --eps, only with --op gem
  std::optional<double> lse_r;                    // --r, only with --op lse
  std::vector<size_spec> sizes{parse_size("1")};  // --size: two or more make a pyramid
  std::optional<layout> axes;                     // --layout; by rank when absent
  bool flatten = false;
  bool normalize = false;               // --normalize l2
  bool indices = false;                 // --indices: each max window's argmax too
  std::optional<dtype> output_type;     // --dtype; auto when absent
  std::optional<output_format> format;  // --format, for directory outputs
  std::vector<std::string> name_globs;  // --name
  std::optional<shard_spec> shard;      // --shard K/N
  std::optional<std::string> report_path;
  std::optional<report_format> report_as;
  int jobs = 1;
  bool force = false;
  bool skip_existing = false;
  bool keep_going = false;
  bool dry_run = false;
  bool sync = false;
  bool quiet = false;
  bool verbose = false;
};

// Value syntax of the pool flags, with plain-English usage errors.
std::optional<dtype> parse_output_dtype(std::string_view text);  // nullopt for "auto"
output_format parse_output_format(std::string_view text);        // npy, npz, h5
report_format parse_report_format(std::string_view text);        // text, json
// --normalize: "l2", the only norm there is; throws usage_error otherwise.
void check_normalization(std::string_view text);

// Throws usage_error for flags that cannot go together or an output whose
// kind cannot be told from its name.
void check_pool_options(const pool_options& options);

// Where the terminal is: decides where the default report goes and whether
// it is summarized.
struct console {
  std::ostream& out;
  std::ostream& err;
  bool out_is_terminal = false;
  bool err_is_terminal = false;
  std::size_t err_columns = 80;  // the terminal's width, for the progress line
};

// Runs the whole command; returns the exit code.
int run_pool(const pool_options& options, console& io);

}  // namespace featpool
