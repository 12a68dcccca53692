#include "executor.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <limits>
#include <optional>

#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>

#include "featpool/error.hpp"
#include "featpool/interrupt.hpp"

namespace featpool {
namespace {

using clock = std::chrono::steady_clock;

double milliseconds_since(clock::time_point start) {
  return std::chrono::duration<double, std::milli>(clock::now() - start).count();
}

// Items in flight per worker: enough that a worker never waits for the
// in-order stage, few enough that pooled results held for it stay small.
constexpr int kItemsPerWorker = 2;

// One unit of work, pooled by one worker. An item holding every tensor of
// its output file writes that file itself (a mirrored directory, an NPY
// file); items sharing one file (collecting into one .h5 or .npz) hand
// their pooled tensors to the in-order stage, which writes them.
struct work_item {
  std::size_t group = 0;
  std::vector<std::size_t> tensors;  // indices into plan::tensors
  bool owns_output = false;
};

// The runnable tensors of one output file, consecutive in the plan.
struct output_group {
  std::vector<std::size_t> tensors;
  std::size_t last_item = 0;
};

// What a worker made of an item, waiting for the in-order stage.
struct item_result {
  std::vector<std::optional<pooled_tensor>> pooled;  // items sharing an output
  std::vector<std::optional<error>> failures;
  std::vector<double> elapsed_ms;
  std::unique_ptr<tensor_sink> sink;  // an owned output, finished, not yet published
  std::optional<error> output_failure;
};

// The input a worker read last, kept open for its next tensor of that file.
struct cached_input {
  std::size_t index = std::numeric_limits<std::size_t>::max();
  std::unique_ptr<tensor_source> source;
};

bool runnable(const planned_tensor& p) { return p.input && p.record.status == tensor_status::ok; }

provenance provenance_of(const planned_tensor& p, const pool_options& options) {
  return {std::string(pool_op_name(options.op)), options.size.text, p.request.axes.letters,
          tensor_reference(p.info), p.info.shape};
}

void mark_failed(report_record& r, const std::string& reason) {
  r.status = tensor_status::failed;
  r.message = reason;
  r.destination.reset();
}

}  // namespace

struct executor::state {
  plan& work;
  const pool_options& options;
  std::function<void(const std::string&)> say;
  progress_line* progress;

  std::vector<output_group> groups;
  std::vector<work_item> items;
  std::vector<item_result> results;  // by item; emptied as items settle
  std::vector<bool> written;         // by tensor
  tbb::enumerable_thread_specific<cached_input> open_inputs;
  std::unique_ptr<tensor_sink> shared_sink;
  bool shared_failed = false;
  std::atomic<bool> stop_feeding{false};
  bool stopped_at_failure = false;

  state(plan& w, const pool_options& o, std::function<void(const std::string&)> s, progress_line* p)
      : work(w), options(o), say(std::move(s)), progress(p), written(w.tensors.size(), false) {
    split_into_items();
  }

  void split_into_items() {
    const auto& tensors = work.tensors;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      if (!runnable(tensors[i])) continue;
      if (groups.empty() ||
          tensors[groups.back().tensors.front()].output_path != tensors[i].output_path) {
        groups.emplace_back();
      }
      groups.back().tensors.push_back(i);
    }
    bool shared = work.target.kind == output_kind::file;
    for (std::size_t g = 0; g < groups.size(); ++g) {
      auto& group = groups[g];
      if (shared && group.tensors.size() > 1) {
        for (auto t : group.tensors) items.push_back({g, {t}, false});
      } else {
        items.push_back({g, group.tensors, true});
      }
      group.last_item = items.size() - 1;
    }
    results.resize(items.size());
  }

  void run() {
    int jobs = std::max(1, options.jobs);
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism,
                              static_cast<std::size_t>(jobs));
    tbb::task_arena arena(jobs);
    std::size_t next = 0;
    auto feed = [&](tbb::flow_control& control) -> std::size_t {
      if (next == items.size() || stop_feeding.load() || pending_interrupt()) {
        control.stop();
        return 0;
      }
      return next++;
    };
    auto produce = [&](std::size_t i) {
      pool_item(i);
      return i;
    };
    auto settle = [&](std::size_t i) { settle_item(i); };
    arena.execute([&] {
      tbb::parallel_pipeline(
          static_cast<std::size_t>(jobs * kItemsPerWorker),
          tbb::make_filter<void, std::size_t>(tbb::filter_mode::serial_in_order, feed) &
              tbb::make_filter<std::size_t, std::size_t>(tbb::filter_mode::parallel, produce) &
              tbb::make_filter<std::size_t, void>(tbb::filter_mode::serial_in_order, settle));
    });
    check_interrupt();
  }

  // --- on any worker -----------------------------------------------------

  void pool_item(std::size_t i) {
    const auto& item = items[i];
    auto& result = results[i];
    std::size_t n = item.tensors.size();
    result.failures.resize(n);
    result.elapsed_ms.resize(n);
    if (!item.owns_output) result.pooled.resize(n);
    // The output is created first, so an unwritable folder is found before
    // any data is read.
    if (item.owns_output &&
        !try_output([&] { result.sink = open_sink(work.tensors[item.tensors[0]]); }, result)) {
      return;
    }
    bool wrote = false;
    for (std::size_t k = 0; k < n; ++k) {
      const auto& p = work.tensors[item.tensors[k]];
      auto start = clock::now();
      std::optional<pooled_tensor> pooled;
      try {
        pooled = pool_tensor(p);
      } catch (const error& failure) {
        result.failures[k] = failure;
      }
      result.elapsed_ms[k] = milliseconds_since(start);
      if (!pooled) {
        if (options.keep_going) continue;
        return;
      }
      if (!item.owns_output) {
        result.pooled[k] = std::move(pooled);
      } else if (!try_output(
                     [&] { result.sink->write(p.output_name, *pooled, provenance_of(p, options)); },
                     result)) {
        return;
      }
      wrote = true;
    }
    if (!item.owns_output) return;
    if (!wrote) {
      result.sink.reset();  // every tensor failed: nothing to publish
      return;
    }
    try_output([&] { result.sink->finish(); }, result);
  }

  // Runs one step of writing an owned output; a failure fails the file.
  template <class Step>
  static bool try_output(Step step, item_result& result) {
    try {
      step();
      return true;
    } catch (const error& failure) {
      result.output_failure = failure;
      result.sink.reset();
      return false;
    }
  }

  pooled_tensor pool_tensor(const planned_tensor& p) {
    auto& source = source_for(*p.input);
    auto reader = source.open(p.tensor_index);
    pooler kernel(p.info, p.request);
    for (auto block = reader->next(); !block.empty(); block = reader->next()) {
      check_interrupt();
      kernel.consume(block);
      if (progress) progress->add_bytes(block.size());
    }
    auto pooled = kernel.finish();
    if (p.flatten) flatten(pooled, p.request.axes);
    return pooled;
  }

  // Inputs are opened again to be read (listing closed them, so thousands
  // of files never hold thousands of handles); streams were kept open.
  tensor_source& source_for(std::size_t input) {
    auto& planned = work.inputs[input];
    if (planned.stream) return *planned.stream;
    auto& cached = open_inputs.local();
    if (cached.index != input || !cached.source) {
      cached.source.reset();
      cached.source = open_input(planned.input);
      cached.index = input;
    }
    return *cached.source;
  }

  std::unique_ptr<tensor_sink> open_sink(const planned_tensor& p) {
    if (p.output_path == "-") return create_stdout_sink();
    // A directory output mirrors the input tree, so its folders may not exist yet.
    if (work.target.kind == output_kind::directory) {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(p.output_path).parent_path(), ec);
      if (ec) throw error(p.output_path, "cannot create its folder: " + ec.message());
    }
    return create_sink(p.output_as, p.output_path, options.sync);
  }

  // --- in input order, one item at a time --------------------------------

  void settle_item(std::size_t i) {
    auto result = std::move(results[i]);  // released, with any unpublished file, on return
    const auto& item = items[i];
    if (stopped_at_failure) return;
    for (std::size_t k = 0; k < item.tensors.size(); ++k) {
      auto& p = work.tensors[item.tensors[k]];
      p.record.elapsed_ms = result.elapsed_ms[k];
      if (result.failures[k]) fail_tensor(p, *result.failures[k]);
    }
    if (progress) progress->add_tensors(item.tensors.size());
    if (stopped_at_failure) return;
    if (item.owns_output) {
      settle_owned(item, result);
    } else {
      settle_shared(i, item, result);
    }
  }

  void settle_owned(const work_item& item, item_result& result) {
    if (result.output_failure) return fail_output(item.group, *result.output_failure);
    if (!result.sink) return;
    try {
      result.sink->publish();
    } catch (const error& failure) {
      return fail_output(item.group, failure);
    }
    mark_written(item.tensors);
  }

  void settle_shared(std::size_t i, const work_item& item, item_result& result) {
    const auto& group = groups[item.group];
    for (std::size_t k = 0; k < item.tensors.size() && !shared_failed; ++k) {
      if (!result.pooled[k]) continue;
      const auto& p = work.tensors[item.tensors[k]];
      try {
        if (!shared_sink) shared_sink = open_sink(p);
        shared_sink->write(p.output_name, *result.pooled[k], provenance_of(p, options));
      } catch (const error& failure) {
        fail_output(item.group, failure);
      }
    }
    if (i != group.last_item || !shared_sink || shared_failed) return;
    try {
      shared_sink->finish();
      shared_sink->publish();
    } catch (const error& failure) {
      return fail_output(item.group, failure);
    }
    mark_written(group.tensors);
  }

  void mark_written(const std::vector<std::size_t>& tensors) {
    for (auto t : tensors) written[t] = work.tensors[t].record.status == tensor_status::ok;
  }

  void fail_tensor(planned_tensor& p, const error& failure) {
    mark_failed(p.record, failure.reason());
    say(error_line(failure));
    stop_unless_keep_going();
  }

  // One output file failed: one line, but every tensor in it is failed.
  void fail_output(std::size_t group, const error& failure) {
    say(error_line(failure));
    for (auto t : groups[group].tensors) {
      auto& r = work.tensors[t].record;
      if (r.status == tensor_status::ok) mark_failed(r, failure.reason());
    }
    shared_failed = shared_failed || !items[groups[group].last_item].owns_output;
    stop_unless_keep_going();
  }

  void stop_unless_keep_going() {
    if (options.keep_going) return;
    stopped_at_failure = true;
    stop_feeding = true;
  }
};

executor::executor(plan& work, const pool_options& options,
                   std::function<void(const std::string&)> say, progress_line* progress)
    : state_(std::make_unique<state>(work, options, std::move(say), progress)) {}

executor::~executor() = default;

bool executor::run() {
  state_->run();
  return !state_->stopped_at_failure;
}

void executor::mark_unwritten(const std::string& why) {
  auto& tensors = state_->work.tensors;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    auto& r = tensors[i].record;
    if (r.status == tensor_status::ok && !state_->written[i]) {
      r.status = tensor_status::skipped;
      r.message = why;
      r.destination.reset();
    }
  }
}

}  // namespace featpool
