// Fuzz target: the bytes as an HDF5 file, opened and listed (datasets,
// types, chunks, filters) through the HDF5 module as the CLI does, and its
// small datasets read through pooling (pool_like_cli.hpp). Attributes are
// left out: see README.md on libhdf5.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "fuzz_inputs.hpp"
#include "pool_like_cli.hpp"

namespace {

// A valid file of a few hundred bytes can declare a dataset of terabytes,
// all fill value, which featpool pools correctly but for a long time: that
// is work, not a fault. Larger datasets are listed and planned, not read.
constexpr std::uint64_t kMaxReadBytes = std::uint64_t{4} << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace featpool::fuzz;
  std::span bytes(data, size);
  pool_every_tensor([&] { return std::make_unique<temp_file>(bytes, ".h5"); }, kMaxReadBytes);
  return 0;
}
