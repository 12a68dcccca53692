// Fuzz target: the NPY header parser (read_npy_header, and describe_npy,
// which interprets its dtype and checks its size) over bytes in memory.
// Every input must give a header or a featpool::error.

#include <cstddef>
#include <cstdint>
#include <span>

#include "featpool/byte_stream.hpp"
#include "featpool/error.hpp"
#include "featpool/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace featpool;
  auto bytes = std::as_bytes(std::span(data, size));
  try {
    memory_stream in(bytes);
    auto header = read_npy_header(in, "fuzz.npy", "");
    describe_npy(header, "fuzz.npy", "fuzz", file_format::npy, bytes.size());
  } catch (const error&) {
    // A clean refusal, what the CLI reports.
  }
  return 0;
}
