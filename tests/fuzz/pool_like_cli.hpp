#pragma once
// Pooling an input as `featpool pool` does, up to the output it would write:
// the plan makes every decision and applies every limit of the library (what
// fits the layout, the 4 GiB cap on a pooled tensor, truncation found up
// front), then each tensor it found runnable is read and pooled as the
// executor does on one worker. Nothing is written.
//
// Failures are what the CLI reports: featpool::error, per file or tensor.
// Anything else (another exception, a crash, a sanitizer report) escapes to
// the fuzzer as a finding.

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>

#include "fuzz_inputs.hpp"

namespace featpool::fuzz {

// Makes the input afresh for each pass: a stream can be read only once.
using input_factory = std::function<std::unique_ptr<fuzz_input>()>;

// Pools every numeric tensor of the input twice: `--op avg --size 1` with
// the layout by rank, and `--op max --size 3` with a `--layout` of each
// tensor's rank, so that tensors of every rank a layout can name are read.
// Tensors of more than `max_bytes` are planned but not read.
void pool_every_tensor(const input_factory& make_input,
                       std::uint64_t max_bytes = std::numeric_limits<std::uint64_t>::max());

}  // namespace featpool::fuzz
