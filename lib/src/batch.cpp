#include "featpool/batch.hpp"

#include <csignal>
#include <filesystem>
#include <memory>
#include <ostream>

#include "executor.hpp"
#include <fmt/format.h>

#include "featpool/error.hpp"
#include "featpool/exit_code.hpp"
#include "featpool/file_identity.hpp"
#include "featpool/interrupt.hpp"
#include "featpool/plan.hpp"
#include "featpool/progress.hpp"

namespace featpool {
namespace {

// Where the report goes and in which form.
struct report_destination {
  std::ostream* stream = nullptr;  // null: not shown
  std::string path;                // set for a file
  report_format format = report_format::text;
  bool summarize = false;
};

report_destination choose_report(const pool_options& options, console& io, bool data_on_stdout) {
  report_destination d;
  if (options.report_path && *options.report_path != "-") {
    d.path = *options.report_path;
    d.format = options.report_as.value_or(d.path.ends_with(".json") ? report_format::json
                                                                    : report_format::text);
    return d;
  }
  d.format = options.report_as.value_or(report_format::text);
  bool explicit_stdout = options.report_path.has_value();
  if (options.quiet && !explicit_stdout) return d;
  bool to_stderr = data_on_stdout && !explicit_stdout;
  d.stream = to_stderr ? &io.err : &io.out;
  bool terminal = to_stderr ? io.err_is_terminal : io.out_is_terminal;
  d.summarize = terminal && !options.verbose;
  return d;
}

std::string render(const std::vector<report_record>& records, const report_destination& d) {
  if (d.format == report_format::json) {
    // File names need not be UTF-8: their stray bytes become U+FFFD.
    return report_json(records).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) +
           "\n";
  }
  return report_text(records, d.summarize && records.size() > kReportSummaryThreshold);
}

// Returns false, having said why, when the report could not be written:
// the run then did not do everything asked for.
bool write_report(const std::vector<report_record>& records, const report_destination& d,
                  console& io) {
  try {
    if (!d.path.empty()) {
      write_output_file(d.path, render(records, d), false);
    } else if (d.stream) {
      write_standard_output(*d.stream, render(records, d));
    }
  } catch (const error& failure) {
    io.err << error_line(failure) << '\n';
    return false;
  }
  return true;
}

bool same_path(const std::string& a, const std::string& b) {
  std::error_code a_failed;
  std::error_code b_failed;
  auto a_resolved = std::filesystem::weakly_canonical(a, a_failed);
  auto b_resolved = std::filesystem::weakly_canonical(b, b_failed);
  return !a_failed && !b_failed && a_resolved == b_resolved;
}

// The report file is an output too: it must never replace an input (by file
// identity, as for outputs) nor the pooled output. Empty when it does not.
std::string report_clash(const plan& work, const report_destination& d) {
  if (d.path.empty()) return {};
  if (auto report = identity_of(d.path)) {
    for (const auto& in : work.inputs) {
      if (!in.input.stream && identity_of(in.input.path) == report) {
        return "the report would replace one of the inputs";
      }
    }
  }
  if (work.target.kind == output_kind::file && same_path(d.path, work.target.path)) {
    return "the report would replace the pooled output";
  }
  return {};
}

// The progress line, on a terminal's stderr only and never with -q.
std::unique_ptr<progress_line> show_progress(const plan& work, const pool_options& options,
                                             console& io) {
  if (options.quiet || !io.err_is_terminal) return nullptr;
  std::uint64_t tensors = 0;
  std::uint64_t bytes = 0;
  for (const auto& p : work.tensors) {
    if (!p.input || p.record.status != tensor_status::ok) continue;
    ++tensors;
    bytes += p.info.nbytes;
  }
  return std::make_unique<progress_line>(io.err, io.err_columns, tensors, bytes);
}

std::vector<report_record> records_of(const plan& work) {
  std::vector<report_record> records;
  for (const auto& p : work.tensors) records.push_back(p.record);
  return records;
}

std::string failure_line(const report_record& r) {
  // A file that failed on one of its tensors while being listed has no
  // name in its record (its tensors are not known) but a reference to it.
  if (!r.name && !r.reference.empty()) return error_line(error(r.reference, r.message));
  return error_line(error(r.file, r.name.value_or(""), r.message));
}

}  // namespace

std::optional<dtype> parse_output_dtype(std::string_view text) {
  if (text == "auto") return std::nullopt;
  if (text == "float16" || text == "float32" || text == "float64") return dtype_from_name(text);
  throw usage_error(fmt::format("--dtype: '{}': expected auto, float16, float32 or float64", text));
}

output_format parse_output_format(std::string_view text) {
  if (text == "npy") return output_format::npy;
  if (text == "npz") return output_format::npz;
  if (text == "h5" || text == "hdf5") return output_format::hdf5;
  if (text == "safetensors") return output_format::safetensors;
  throw usage_error(fmt::format("--format: '{}': expected npy, npz, h5 or safetensors", text));
}

report_format parse_report_format(std::string_view text) {
  if (text == "text") return report_format::text;
  if (text == "json") return report_format::json;
  throw usage_error(fmt::format("--report-format: '{}': expected text or json", text));
}

void check_normalization(std::string_view text) {
  if (text != "l2") throw usage_error(fmt::format("--normalize: '{}': expected l2", text));
}

namespace {

// --indices: a second tensor per pooled one, the argmax of max's windows
// at one size, so the output must take named tensors.
void check_indices(const pool_options& options, const output_target& target) {
  if (options.op != pool_op::max) {
    throw usage_error(
        fmt::format("--indices are the argmax of max's windows: they go with --op max, not --op {}",
                    pool_op_name(options.op)));
  }
  if (options.sizes.size() > 1) {
    throw usage_error(fmt::format("--indices go with one --size, not a spatial pyramid ({})",
                                  size_levels_text(options.sizes)));
  }
  constexpr const char* kInstead = "write to an .h5 or .npz file or to a directory";
  if (target.kind == output_kind::standard_output) {
    throw usage_error(fmt::format(
        "--indices write a second tensor, and -o - carries one NPY stream; {}", kInstead));
  }
  if (target.kind == output_kind::file && target.format == output_format::npy) {
    throw usage_error(
        fmt::format("--indices write a second tensor, and {} is an NPY file, which takes one; {}",
                    target.path, kInstead));
  }
  if (target.kind == output_kind::file && holds_rows(target.format)) {
    throw usage_error(fmt::format(
        "--indices write a second tensor, and {} holds rows of values; {}", target.path, kInstead));
  }
  if (target.kind == output_kind::directory && target.format_forced &&
      target.format == output_format::npy) {
    throw usage_error(
        "--indices write a second tensor beside each, and --format npy takes one per file; use "
        "--format npz or h5, or leave it out");
  }
}

}  // namespace

void check_pool_options(const pool_options& options) {
  if (options.force && options.skip_existing) {
    throw usage_error("--force and --skip-existing cannot go together");
  }
  if (options.jobs < 1)
    throw usage_error(fmt::format("-j: '{}': must be at least 1", options.jobs));
  if (options.gem && options.op != pool_op::gem) {
    throw usage_error(
        fmt::format("--p and --eps are the generalized mean's: they go with "
                    "--op gem, not --op {}",
                    pool_op_name(options.op)));
  }
  if (options.lse_r && options.op != pool_op::lse) {
    throw usage_error(fmt::format("--r is the log-sum-exp's: it goes with --op lse, not --op {}",
                                  pool_op_name(options.op)));
  }
  if (options.output == "-" && options.report_path == "-") {
    throw usage_error("--report -: standard output already carries the pooled tensor");
  }
  auto target = classify_output(options.output, options.format);
  if (options.indices) check_indices(options, target);
}

namespace {

int exit_code_for(const interrupted& stop) {
  return stop.signal == SIGTERM ? exit_code::terminated : exit_code::interrupted;
}

}  // namespace

int run_pool(const pool_options& options, console& io) {
  check_pool_options(options);
  install_interrupt_handlers();
  plan work;
  try {
    work = make_plan(options);
  } catch (const interrupted& stop) {
    return exit_code_for(stop);  // nothing was written yet
  }
  auto report = choose_report(options, io, work.target.kind == output_kind::standard_output);
  if (auto clash = report_clash(work, report); !clash.empty()) {
    io.err << error_line(error(report.path, clash)) << '\n';
    return exit_code::failure;  // nothing written, not even the report
  }
  bool failed = work.has_failures();
  // Problems found while planning are reported on stderr too, one line each.
  for (const auto& p : work.tensors) {
    if (p.record.status == tensor_status::failed) io.err << failure_line(p.record) << '\n';
  }
  if (options.dry_run || (failed && !options.keep_going)) {
    for (auto& p : work.tensors) {
      if (p.record.status == tensor_status::ok) {
        p.record.message =
            options.dry_run ? "dry run: not written" : "not written: planning failed";
        if (!options.dry_run) p.record.destination.reset();
      }
    }
    bool reported = write_report(records_of(work), report, io);
    return failed || !reported ? exit_code::failure : exit_code::ok;
  }

  int signal = 0;
  {
    auto progress = show_progress(work, options, io);
    auto say = [&](const std::string& line) {
      if (progress) {
        progress->print(line);
      } else {
        io.err << line << '\n';
      }
    };
    executor run(work, options, say, progress.get());
    try {
      if (!run.run()) run.mark_unwritten("not written: stopped at the first failure");
    } catch (const interrupted& stop) {
      signal = stop.signal;
      run.mark_unwritten("not written: interrupted");
    }
  }
  bool reported = write_report(records_of(work), report, io);
  if (signal) return exit_code_for(interrupted{signal});
  return work.has_failures() || !reported ? exit_code::failure : exit_code::ok;
}

}  // namespace featpool
