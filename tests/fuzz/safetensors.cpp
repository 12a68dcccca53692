// Fuzz target: the bytes as a .safetensors file, its header checked and
// listed as the CLI opens it, and every numeric tensor read through pooling
// (pool_like_cli.hpp).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "fuzz_inputs.hpp"
#include "pool_like_cli.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace featpool::fuzz;
  std::span bytes(data, size);
  pool_every_tensor([&] { return std::make_unique<temp_file>(bytes, ".safetensors"); });
  return 0;
}
