// Fuzz target: a whole NPY file, opened as featpool opens a file argument and
// as it opens a FIFO (a stream of unknown length, read once), planned and
// pooled as `featpool pool` would (pool_like_cli.hpp).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "fuzz_inputs.hpp"
#include "pool_like_cli.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace featpool::fuzz;
  std::span bytes(data, size);
  pool_every_tensor([&] { return std::make_unique<temp_file>(bytes, ".npy"); });
  pool_every_tensor([&] { return std::make_unique<memory_pipe>(bytes); });
  return 0;
}
