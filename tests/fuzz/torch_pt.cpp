// Fuzz target: the bytes as a torch.save file (.pt), opened through the zip
// module as the CLI opens it, its pickle read by the restricted unpickler,
// every tensor listed, and every numeric tensor read through pooling
// (pool_like_cli.hpp): contiguous views straight, the others gathered.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "fuzz_inputs.hpp"
#include "pool_like_cli.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace featpool::fuzz;
  std::span bytes(data, size);
  pool_every_tensor([&] { return std::make_unique<temp_file>(bytes, ".pt"); });
  return 0;
}
