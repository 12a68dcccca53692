#include "executor.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <limits>
#include <new>
#include <optional>

#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>

#include "featpool/bfloat16.hpp"
#include "featpool/element.hpp"
#include "featpool/error.hpp"
#include "featpool/interrupt.hpp"

namespace featpool {
namespace {

using clock = std::chrono::steady_clock;

double milliseconds_since(clock::time_point start) {
  return std::chrono::duration<double, std::milli>(clock::now() - start).count();
}

// Bytes each worker reads at a time when reading a tensor in place: small
// enough to be still in the core's cache when the kernel pools them.
constexpr std::size_t kInPlaceBlockBytes = std::size_t{256} << 10;

// Tensors smaller than this are read by one thread: more would cost more
// in starting and joining them than they save.
constexpr std::uint64_t kParallelBytes = std::uint64_t{1} << 20;

// Items in flight per worker: enough that a worker never waits for the
// in-order stage, few enough that pooled results held for it stay small.
constexpr int kItemsPerWorker = 2;

// One tensor, pooled by one worker. A tensor that is the only one of its
// output file (a mirrored NPY, an NPY output) is also written and finished
// there; the tensors of a file that takes several (an .h5 or .npz output)
// are handed, pooled, to the in-order stage, which writes them into it.
// Either way the tensors of one HDF5 file with hundreds of datasets are
// pooled in parallel.
struct work_item {
  std::size_t group = 0;
  std::size_t tensor = 0;  // index into plan::tensors
  bool owns_output = false;
};

// The runnable tensors of one output file, consecutive in the plan.
struct output_group {
  std::vector<std::size_t> tensors;
  std::size_t last_item = 0;
};

// A pooled tensor, and with --indices the argmax of its windows.
struct pooled_output {
  pooled_tensor values;
  std::optional<pooled_tensor> indices;
};

// What a worker made of an item, waiting for the in-order stage.
struct item_result {
  std::optional<pooled_output> pooled;  // for a file that takes several tensors
  std::optional<error> failure;
  double elapsed_ms = 0;
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
  return {std::string(pool_op_name(options.op)), size_levels_text(options.sizes),
          p.request.axes.letters, tensor_reference(p.info), p.info.shape};
}

// Writes a pooled tensor into its output file, its indices right after it
// under their own name, with the same provenance.
void write_pooled(tensor_sink& sink, const planned_tensor& p, const pooled_output& pooled,
                  const pool_options& options) {
  auto origin = provenance_of(p, options);
  sink.write(p.output_name, pooled.values, origin);
  if (pooled.indices) sink.write(p.indices_name, *pooled.indices, origin);
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
  // Per worker, the input it has open. Made only when workers run: its
  // construction starts oneTBB's allocator, which one item does not need.
  std::optional<tbb::enumerable_thread_specific<cached_input>> open_inputs;
  cached_input serial_input;                // the open input when pooling on this thread
  std::unique_ptr<tensor_sink> group_sink;  // the file being written in order
  std::size_t group_of_sink = 0;
  bool group_failed = false;
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
    for (std::size_t g = 0; g < groups.size(); ++g) {
      auto& group = groups[g];
      bool alone = group.tensors.size() == 1;
      for (auto t : group.tensors) items.push_back({g, t, alone});
      group.last_item = items.size() - 1;
    }
    results.resize(items.size());
  }

  void run() {
    // One small tensor (the common scripted case: a file in, a file out)
    // is pooled right here: starting worker threads would cost more than
    // the pooling.
    if (items.size() == 1 && work.tensors[items[0].tensor].info.nbytes < kParallelBytes) {
      pool_item(0);
      settle_item(0);
      check_interrupt();
      return;
    }
    open_inputs.emplace();
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
    const auto& p = work.tensors[item.tensor];
    auto& result = results[i];
    // An owned output is created first, so an unwritable folder is found
    // before any data is read.
    if (item.owns_output && !try_output([&] { result.sink = open_sink(p); }, result)) return;
    auto start = clock::now();
    try {
      result.pooled = pool_tensor(p);
    } catch (const error& failure) {
      result.failure = failure;
    } catch (const std::bad_alloc&) {
      // The accumulators and the output are as large as the output the
      // plan allowed (up to 4 GiB), which this machine may not have.
      result.failure = error(p.info.file, p.info.name, "out of memory for the pooled output");
    }
    result.elapsed_ms = milliseconds_since(start);
    if (!item.owns_output) return;
    if (!result.pooled) {
      result.sink.reset();  // nothing to publish
      return;
    }
    try_output(
        [&] {
          write_pooled(*result.sink, p, *result.pooled, options);
          result.pooled.reset();
          result.sink->finish();
        },
        result);
  }

  // Runs the writing of an owned output; a failure fails the file.
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

  pooled_output pool_tensor(const planned_tensor& p) {
    auto& source = source_for(*p.input);
    auto reader = open_computed(source, p.tensor_index);
    pooler kernel(p.info, p.request);
    auto raw = reader->raw();
    int threads = p.info.nbytes < kParallelBytes ? 1 : p.request.threads;
    auto ranges = kernel.independent_ranges(p.info.element_count(), threads);
    // Reading in place pays when every worker gets a range of its own, and
    // on one worker too (small blocks stay in the cache); otherwise the
    // kernel splits large blocks between the workers itself.
    if (raw && (threads == 1 || ranges.size() > 2)) {
      read_in_place(*raw, p.info, kernel, ranges);
    } else {
      for (auto block = reader->next(); !block.empty(); block = reader->next()) {
        check_interrupt();
        kernel.consume(block);
        if (progress) progress->add_bytes(block.size());
      }
    }
    pooled_output pooled{kernel.finish(), std::nullopt};
    if (p.request.indices) pooled.indices = kernel.indices();
    // Indices are flattened as their values are, so the two stay alike.
    if (p.flatten) {
      flatten(pooled.values, p.request.axes);
      if (pooled.indices) flatten(*pooled.indices, p.request.axes);
    }
    return pooled;
  }

  // Each range of the tensor is read with pread by a worker of its own and
  // pooled by a stream of its own, so copying the data out of the page
  // cache runs on every core, not on one reading thread.
  void read_in_place(const raw_extent& raw, const tensor_info& info, pooler& kernel,
                     const std::vector<std::uint64_t>& ranges) {
    const std::size_t item = dtype_size(*info.type);
    const std::size_t block_elements = std::max<std::size_t>(1, kInPlaceBlockBytes / item);
    auto read_range = [&](std::size_t part) {
      auto stream = kernel.open_stream(ranges[part]);
      auto buffer = std::make_unique_for_overwrite<std::byte[]>(block_elements * item);
      for (std::uint64_t at = ranges[part]; at < ranges[part + 1];) {
        check_interrupt();
        auto elements = std::min<std::uint64_t>(block_elements, ranges[part + 1] - at);
        std::span block(buffer.get(), static_cast<std::size_t>(elements) * item);
        read_raw_elements(raw, info, item, at, block);
        stream->consume(block);
        if (progress) progress->add_bytes(block.size());
        at += elements;
      }
    };
    if (ranges.size() == 2) return read_range(0);  // no workers needed
    tbb::parallel_for(std::size_t{0}, ranges.size() - 1, read_range);
  }

  // Inputs are opened again to be read (listing closed them, so thousands
  // of files never hold thousands of handles); streams were kept open.
  tensor_source& source_for(std::size_t input) {
    auto& planned = work.inputs[input];
    if (planned.stream) return *planned.stream;
    auto& cached = open_inputs ? open_inputs->local() : serial_input;
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
    return create_sink(p.output_as, p.output_path, options.sync,
                       options.force ? on_existing::replace : on_existing::refuse);
  }

  // --- in input order, one item at a time --------------------------------

  void settle_item(std::size_t i) {
    auto result = std::move(results[i]);  // released, with any unpublished file, on return
    const auto& item = items[i];
    if (stopped_at_failure) return;
    auto& p = work.tensors[item.tensor];
    p.record.elapsed_ms = result.elapsed_ms;
    if (progress) progress->add_tensors(1);
    if (result.failure) {
      fail_tensor(p, *result.failure);
      if (stopped_at_failure) return;
    }
    if (item.owns_output) {
      settle_owned(item, result);
    } else {
      settle_in_group(i, item, result);
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
    mark_written(groups[item.group].tensors);
  }

  // Writes a pooled tensor into its group's file, and finishes and
  // publishes the file with the group's last tensor.
  void settle_in_group(std::size_t i, const work_item& item, item_result& result) {
    if (!group_sink || group_of_sink != item.group) {
      group_sink.reset();  // a failed earlier group's file, never published
      group_of_sink = item.group;
      group_failed = false;
    }
    const auto& p = work.tensors[item.tensor];
    if (result.pooled && !group_failed) {
      try {
        if (!group_sink) group_sink = open_sink(p);
        write_pooled(*group_sink, p, *result.pooled, options);
      } catch (const error& failure) {
        return fail_output(item.group, failure);
      }
    }
    const auto& group = groups[item.group];
    if (i != group.last_item || !group_sink || group_failed) return;
    try {
      group_sink->finish();
      group_sink->publish();
    } catch (const error& failure) {
      return fail_output(item.group, failure);
    }
    group_sink.reset();
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
    if (group == group_of_sink) {
      group_failed = true;
      group_sink.reset();
    }
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
