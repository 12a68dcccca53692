#include "featpool/batch.hpp"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <ostream>

#include <fmt/format.h>

#include "featpool/error.hpp"
#include "featpool/exit_code.hpp"
#include "featpool/interrupt.hpp"
#include "featpool/plan.hpp"
#include "featpool/version.hpp"

namespace featpool {
namespace {

using clock = std::chrono::steady_clock;

double milliseconds_since(clock::time_point start) {
  return std::chrono::duration<double, std::milli>(clock::now() - start).count();
}

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
  if (d.format == report_format::json) return report_json(records).dump(2) + "\n";
  return report_text(records, d.summarize && records.size() > kReportSummaryThreshold);
}

void write_report(const std::vector<report_record>& records, const report_destination& d,
                  console& io) {
  if (!d.path.empty()) {
    try {
      write_file_atomically(d.path, render(records, d), false);
    } catch (const error& failure) {
      io.err << error_line(failure) << '\n';
    }
  } else if (d.stream) {
    *d.stream << render(records, d);
    d.stream->flush();
  }
}

provenance provenance_of(const planned_tensor& p, const pool_options& options) {
  const auto& info = p.info;
  return {std::string(pool_op_name(options.op)), options.size.text, p.request.axes.letters,
          tensor_reference(info), info.shape};
}

class executor {
 public:
  executor(plan& work, const pool_options& options)
      : plan_(work), options_(options), written_(work.tensors.size(), false) {}

  // Pools every planned tensor, output file by output file. Returns false
  // when it stopped at a failure (without --keep-going).
  bool run() {
    auto& tensors = plan_.tensors;
    for (std::size_t begin = 0; begin < tensors.size();) {
      if (!runnable(tensors[begin])) {
        ++begin;
        continue;
      }
      // Tensors for one output file are consecutive: it is written whole.
      std::size_t end = begin;
      std::vector<std::size_t> group;
      for (; end < tensors.size(); ++end) {
        if (!runnable(tensors[end])) continue;
        if (tensors[end].output_path != tensors[begin].output_path) break;
        group.push_back(end);
      }
      if (!write_output(group)) return false;
      begin = end;
    }
    return true;
  }

 private:
  static bool runnable(const planned_tensor& p) {
    return p.input && p.record.status == tensor_status::ok;
  }

  bool write_output(const std::vector<std::size_t>& group) {
    const auto& first = plan_.tensors[group.front()];
    std::unique_ptr<tensor_sink> sink;
    bool wrote = false;
    for (auto i : group) {
      auto& p = plan_.tensors[i];
      auto start = clock::now();
      try {
        if (!sink) sink = open_sink(first.output_path, first.output_as);
        auto pooled = pool_tensor(p);
        sink->write(p.output_name, pooled, provenance_of(p, options_));
        wrote = true;
      } catch (const error& failure) {
        fail(p, failure);
        if (!options_.keep_going) return false;
      }
      p.record.elapsed_ms = milliseconds_since(start);
    }
    if (!wrote) return true;
    try {
      sink->commit();
    } catch (const error& failure) {
      // One output file failed: one line, but every tensor in it is failed.
      failure_lines_.push_back(error_line(failure));
      for (auto i : group) {
        auto& r = plan_.tensors[i].record;
        if (r.status == tensor_status::ok) mark_failed(r, failure.reason());
      }
      return options_.keep_going;
    }
    for (auto i : group) written_[i] = plan_.tensors[i].record.status == tensor_status::ok;
    return true;
  }

  std::unique_ptr<tensor_sink> open_sink(const std::string& path, output_format format) {
    if (path == "-") return create_stdout_sink();
    // A directory output mirrors the input tree, so its folders may not exist yet.
    if (plan_.target.kind == output_kind::directory) {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
      if (ec) throw error(path, "cannot create its folder: " + ec.message());
    }
    return create_sink(format, path, options_.sync);
  }

  pooled_tensor pool_tensor(const planned_tensor& p) {
    auto& source = source_for(*p.input);
    auto reader = source.open(p.tensor_index);
    pooler kernel(p.info, p.request);
    for (auto block = reader->next(); !block.empty(); block = reader->next()) {
      check_interrupt();
      kernel.consume(block);
    }
    auto pooled = kernel.finish();
    if (p.flatten) flatten(pooled, p.request.axes);
    return pooled;
  }

  // Inputs are opened again to be read (listing closed them, so thousands
  // of files never hold thousands of handles); streams were kept open.
  tensor_source& source_for(std::size_t input) {
    auto& planned = plan_.inputs[input];
    if (planned.stream) return *planned.stream;
    if (open_index_ != input || !open_source_) {
      open_source_ = open_input(planned.input);
      open_index_ = input;
    }
    return *open_source_;
  }

  static void mark_failed(report_record& r, const std::string& reason) {
    r.status = tensor_status::failed;
    r.message = reason;
    r.destination.reset();
  }

  void fail(planned_tensor& p, const error& failure) {
    mark_failed(p.record, failure.reason());
    failure_lines_.push_back(error_line(failure));
  }

 public:
  const std::vector<std::string>& failure_lines() const { return failure_lines_; }

  // Tensors that were planned but whose output was never committed, because
  // the run stopped early, are reported as not written.
  void mark_unwritten(const std::string& why) {
    for (std::size_t i = 0; i < plan_.tensors.size(); ++i) {
      auto& r = plan_.tensors[i].record;
      if (r.status == tensor_status::ok && !written_[i]) {
        r.status = tensor_status::skipped;
        r.message = why;
        r.destination.reset();
      }
    }
  }

 private:
  plan& plan_;
  const pool_options& options_;
  std::vector<bool> written_;
  std::unique_ptr<tensor_source> open_source_;
  std::size_t open_index_ = 0;
  std::vector<std::string> failure_lines_;
};

std::vector<report_record> records_of(const plan& work) {
  std::vector<report_record> records;
  for (const auto& p : work.tensors) records.push_back(p.record);
  return records;
}

std::string failure_line(const report_record& r) {
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
  throw usage_error(fmt::format("--format: '{}': expected npy, npz or h5", text));
}

report_format parse_report_format(std::string_view text) {
  if (text == "text") return report_format::text;
  if (text == "json") return report_format::json;
  throw usage_error(fmt::format("--report-format: '{}': expected text or json", text));
}

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

void check_pool_options(const pool_options& options) {
  if (options.force && options.skip_existing) {
    throw usage_error("--force and --skip-existing cannot go together");
  }
  if (options.jobs < 1)
    throw usage_error(fmt::format("-j: '{}': must be at least 1", options.jobs));
  if (options.output == "-" && options.report_path == "-") {
    throw usage_error("--report -: standard output already carries the pooled tensor");
  }
  classify_output(options.output, options.format);
}

int run_pool(const pool_options& options, console& io) {
  check_pool_options(options);
  auto work = make_plan(options);
  auto report = choose_report(options, io, work.target.kind == output_kind::standard_output);
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
    write_report(records_of(work), report, io);
    return failed ? exit_code::failure : exit_code::ok;
  }

  install_interrupt_handlers();
  executor run(work, options);
  int signal = 0;
  try {
    if (!run.run()) run.mark_unwritten("not written: stopped at the first failure");
  } catch (const interrupted& stop) {
    signal = stop.signal;
    run.mark_unwritten("not written: interrupted");
  }
  for (const auto& line : run.failure_lines()) io.err << line << '\n';
  write_report(records_of(work), report, io);
  if (signal) return signal == SIGTERM ? exit_code::terminated : exit_code::interrupted;
  return work.has_failures() ? exit_code::failure : exit_code::ok;
}

}  // namespace featpool
