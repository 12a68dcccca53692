#include <cstdlib>
#include <string>

#include "column_kernels.hpp"
#include <fmt/format.h>

#include "featpool/error.hpp"
#include "featpool/pool.hpp"

#if FEATPOOL_X86_KERNELS
#include <cpuid.h>
#endif

namespace featpool {
namespace kernels {
namespace {

#if FEATPOOL_X86_KERNELS
// Half-precision conversions, asked of the processor directly: Clang 14's
// __builtin_cpu_supports does not know them.
bool has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
}

bool processor_has(instruction_set isa) {
  __builtin_cpu_init();
  switch (isa) {
    case instruction_set::baseline:
      return true;
    case instruction_set::avx2:
      return __builtin_cpu_supports("avx2") && has_f16c();
    case instruction_set::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && has_f16c();
  }
  return false;
}

const kernel_set& kernels_for(instruction_set isa) {
  switch (isa) {
    case instruction_set::avx512:
      return avx512_kernels();
    case instruction_set::avx2:
      return avx2_kernels();
    case instruction_set::baseline:
      break;
  }
  return baseline_kernels();
}
#else
bool processor_has(instruction_set isa) { return isa == instruction_set::baseline; }
const kernel_set& kernels_for(instruction_set) { return baseline_kernels(); }
#endif

const kernel_set& choose() {
  constexpr instruction_set kAll[] = {instruction_set::avx512, instruction_set::avx2,
                                      instruction_set::baseline};
  const char* requested = std::getenv("FEATPOOL_KERNELS");
  if (requested == nullptr || *requested == '\0') {
    for (auto isa : kAll) {
      if (processor_has(isa)) return kernels_for(isa);
    }
  }
  for (auto isa : kAll) {
    if (instruction_set_name(isa) != requested) continue;
    if (!processor_has(isa)) {
      throw usage_error(
          fmt::format("FEATPOOL_KERNELS={}: this processor cannot run them", requested));
    }
    return kernels_for(isa);
  }
  throw usage_error(
      fmt::format("FEATPOOL_KERNELS={}: expected baseline, avx2 or avx512", requested));
}

}  // namespace

std::string_view instruction_set_name(instruction_set isa) {
  switch (isa) {
    case instruction_set::avx2:
      return "avx2";
    case instruction_set::avx512:
      return "avx512";
    case instruction_set::baseline:
      break;
  }
  return "baseline";
}

const kernel_set& active_kernels() {
  static const kernel_set& chosen = choose();
  return chosen;
}

}  // namespace kernels

std::string_view pooling_instruction_set() {
  return kernels::instruction_set_name(kernels::active_kernels().isa);
}

}  // namespace featpool
