// Micro-benchmarks of the pooling kernels alone: GB/s of input pooled by
// one thread, per op, dtype, layout and output size, on a block that stays
// in the cache (1 MiB, pooled again and again) and on a tensor streamed
// from main memory (256 MiB in 1 MiB blocks). FEATPOOL_KERNELS picks the
// instruction set, as for featpool itself. Run by bench/run.

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "featpool/element.hpp"
#include "featpool/layout.hpp"
#include "featpool/pool.hpp"

namespace {

using featpool::dtype;

constexpr std::uint64_t kBlockBytes = std::uint64_t{1} << 20;
constexpr std::uint64_t kMemoryBytes = std::uint64_t{256} << 20;

struct kernel_case {
  featpool::pool_op op;
  dtype type;
  const char* layout;   // NCHW or NHWC
  std::uint64_t input;  // H = W
  std::uint64_t output;
  bool from_memory;
};

// Random bytes that are valid finite values of every dtype benchmarked
// (halves are drawn from [0, 0x7bff], below infinity). Made once per dtype
// and size: drawing 256 MiB costs more than benchmarking it.
const std::vector<std::byte>& random_block(std::uint64_t bytes, dtype type) {
  static std::map<std::pair<std::uint64_t, dtype>, std::vector<std::byte>> made;
  auto [it, fresh] = made.try_emplace({bytes, type});
  std::vector<std::byte>& data = it->second;
  if (!fresh) return data;
  data.resize(bytes);
  std::mt19937_64 rng(1);
  featpool::visit_dtype(type, [&]<class T>(std::type_identity<T>) {
    auto* values = reinterpret_cast<T*>(data.data());
    for (std::uint64_t i = 0; i < bytes / sizeof(T); ++i) {
      if constexpr (std::is_same_v<T, featpool::float16_bits>) {
        values[i] = {static_cast<std::uint16_t>(rng() % 0x7c00)};
      } else if constexpr (std::is_floating_point_v<T>) {
        values[i] = static_cast<T>(static_cast<double>(rng() % 20001) / 100.0 - 100.0);
      } else {
        values[i] = static_cast<T>(rng());
      }
    }
  });
  return data;
}

void run_case(benchmark::State& state, kernel_case c) {
  std::uint64_t item = featpool::dtype_size(c.type);
  std::uint64_t plane = c.input * c.input * item;
  std::uint64_t total = c.from_memory ? kMemoryBytes : kBlockBytes;
  // As many channels as fill about 1 MiB, a multiple of 16 as in real
  // networks (channels-last rows are then whole registers).
  std::uint64_t channels = std::max<std::uint64_t>(16, kBlockBytes / plane / 16 * 16);
  std::uint64_t samples = std::max<std::uint64_t>(1, total / (channels * plane));
  std::uint64_t sample_bytes = channels * plane;
  bool nchw = std::string(c.layout) == "NCHW";

  featpool::tensor_info info;
  info.type = c.type;
  info.shape = nchw ? std::vector<std::uint64_t>{samples, channels, c.input, c.input}
                    : std::vector<std::uint64_t>{samples, c.input, c.input, channels};
  featpool::pool_request request{
      c.op, featpool::parse_layout(c.layout), {c.output, c.output}, dtype::float32, 1, {}};
  const auto& data = random_block(samples * sample_bytes, c.type);
  for (auto _ : state) {
    featpool::pooler pool(info, request);
    for (std::uint64_t s = 0; s < samples; ++s) {
      pool.consume(std::span(data.data() + s * sample_bytes, sample_bytes));
    }
    benchmark::DoNotOptimize(pool.finish());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * data.size()));
}

void register_all() {
  const std::pair<dtype, const char*> types[] = {{dtype::float16, "f16"},
                                                 {dtype::float32, "f32"},
                                                 {dtype::float64, "f64"},
                                                 {dtype::uint8, "u8"}};
  const std::pair<std::uint64_t, std::uint64_t> sizes[] = {{56, 1}, {56, 2}, {56, 7}, {60, 7}};
  for (bool from_memory : {false, true}) {
    for (auto op : {featpool::pool_op::avg, featpool::pool_op::max}) {
      for (auto [type, type_name] : types) {
        for (const char* layout : {"NCHW", "NHWC"}) {
          for (auto [in, out] : sizes) {
            std::string name = std::string(featpool::pool_op_name(op)) + "/" + type_name + "/" +
                               (layout[1] == 'C' ? "nchw" : "nhwc") + "/" + std::to_string(in) +
                               "to" + std::to_string(out) + (from_memory ? "/memory" : "/cache");
            benchmark::RegisterBenchmark(name.c_str(), run_case,
                                         kernel_case{op, type, layout, in, out, from_memory})
                ->Unit(benchmark::kMicrosecond);
          }
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  register_all();
  benchmark::AddCustomContext("kernels", std::string(featpool::pooling_instruction_set()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
