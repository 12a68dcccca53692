// Fuzz target: the bytes as an NPZ file, opened through the zip module as the
// CLI opens it, every member listed, and every numeric member read through
// pooling (pool_like_cli.hpp).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "fuzz_inputs.hpp"
#include "pool_like_cli.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace featpool::fuzz;
  std::span bytes(data, size);
  pool_every_tensor([&] { return std::make_unique<temp_file>(bytes, ".npz"); });
  return 0;
}
