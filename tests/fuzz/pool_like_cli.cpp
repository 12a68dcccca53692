#include "pool_like_cli.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "featpool/bfloat16.hpp"
#include "featpool/discover.hpp"
#include "featpool/element.hpp"
#include "featpool/error.hpp"
#include "featpool/plan.hpp"

namespace featpool::fuzz {
namespace {

// What the executor reads at a time from a file it reads in place.
constexpr std::size_t kInPlaceBlockBytes = std::size_t{256} << 10;

// Letters that are neither N nor C, for the spatial axes of long layouts.
constexpr std::string_view kSpatialLetters = "ABDEFGHIJKLMOPQRSTUVWXYZ";

[[noreturn]] void broken(const std::string& what) {
  std::cerr << "fuzz harness: " << what << '\n';
  std::abort();
}

// A --layout for tensors of `rank` axes: N, C, then spatial letters, as
// PyTorch orders them; fewer axes keep the spatial ones first. Ranks past
// what 26 distinct letters can name have none.
std::optional<layout> layout_of_rank(std::size_t rank) {
  if (rank == 0 || rank > kSpatialLetters.size() + 2) return std::nullopt;
  std::string letters = rank >= 3 ? "NC" : rank == 2 ? "N" : "";
  letters += kSpatialLetters.substr(0, rank - letters.size());
  return parse_layout(letters);
}

// A failure the CLI reports must say which file and why.
void check_failures(const plan& work) {
  for (const auto& p : work.tensors) {
    const auto& r = p.record;
    if (r.status == tensor_status::failed && (r.file.empty() || r.message.empty())) {
      broken("a failure without a file or a reason: '" + r.file + "': '" + r.message + "'");
    }
  }
}

// Reads a tensor stored as one run of bytes as the executor does on one
// worker: pread in blocks, one pooling stream over the whole tensor.
void read_in_place(const raw_extent& raw, const tensor_info& info, pooler& kernel) {
  const std::size_t item = dtype_size(*info.type);
  const std::uint64_t count = info.element_count();
  auto ranges = kernel.independent_ranges(count, 1);
  if (ranges.size() != 2 || ranges.front() != 0 || ranges.back() != count) {
    broken("one part was asked for, and the ranges are not the whole tensor");
  }
  auto stream = kernel.open_stream(0);
  const std::size_t block_elements = std::max<std::size_t>(1, kInPlaceBlockBytes / item);
  auto buffer = std::make_unique_for_overwrite<std::byte[]>(block_elements * item);
  for (std::uint64_t at = 0; at < count;) {
    auto elements = std::min<std::uint64_t>(block_elements, count - at);
    std::span block(buffer.get(), static_cast<std::size_t>(elements) * item);
    read_raw_elements(raw, info, item, at, block);
    stream->consume(block);
    at += elements;
  }
}

void pool_tensor(tensor_source& source, const planned_tensor& p) {
  auto reader = open_computed(source, p.tensor_index);
  pooler kernel(p.info, p.request);
  if (auto raw = reader->raw()) {
    read_in_place(*raw, p.info, kernel);
  } else {
    for (auto block = reader->next(); !block.empty(); block = reader->next()) kernel.consume(block);
  }
  auto pooled = kernel.finish();
  // What the plan promised is what pooling made.
  auto shape = pooled_shape(p.info.shape, p.request);
  std::uint64_t bytes = dtype_size(pooled.type);
  for (auto extent : shape) bytes *= extent;
  if (pooled.shape != shape || pooled.type != p.request.output_type ||
      pooled.data.size() != bytes) {
    broken("the pooled tensor is not what the plan promised");
  }
}

// One `featpool pool INPUT -o DIR/ ... -j 1`; returns the ranks of the
// numeric tensors it listed.
std::set<std::size_t> pool_pass(const input_factory& make_input, pool_op op, std::string_view size,
                                std::optional<layout> axes, std::uint64_t max_bytes) {
  auto input = make_input();
  pool_options options;
  options.inputs = {input->path()};
  // A directory output takes any number of tensors from one file. Planning
  // only looks whether outputs exist; nothing is written.
  options.output = "fuzz-output-never-written/";
  options.op = op;
  options.sizes = {parse_size(size)};
  options.axes = std::move(axes);
  options.jobs = 1;
  plan work = make_plan(options);
  check_failures(work);

  std::set<std::size_t> ranks;
  // The one input is opened again to be read, once, as an executor's worker
  // does; a stream was kept open by the plan.
  std::unique_ptr<tensor_source> reopened;
  for (const auto& p : work.tensors) {
    if (p.input && p.info.numeric()) ranks.insert(p.info.shape.size());
    if (!p.input || p.record.status != tensor_status::ok || p.info.nbytes > max_bytes) continue;
    auto& planned = work.inputs[*p.input];
    try {
      if (!planned.stream && !reopened) reopened = open_input(planned.input);
      pool_tensor(planned.stream ? *planned.stream : *reopened, p);
    } catch (const error& failure) {
      if (failure.file().empty() || failure.reason().empty()) {
        broken(std::string("a failure without a file or a reason: ") + failure.what());
      }
    }
  }
  return ranks;
}

}  // namespace

void pool_every_tensor(const input_factory& make_input, std::uint64_t max_bytes) {
  auto ranks = pool_pass(make_input, pool_op::avg, "1", std::nullopt, max_bytes);
  for (auto rank : ranks) {
    if (auto axes = layout_of_rank(rank)) {
      pool_pass(make_input, pool_op::max, "3", std::move(axes), max_bytes);
    }
  }
}

}  // namespace featpool::fuzz
