#pragma once
// The inner loops of pooling, compiled once per instruction set (baseline
// x86-64 or any other processor, AVX2, AVX-512) from one source,
// column_kernels.inl, and chosen when the program starts. Each loop adds or
// compares every element in a fixed order that does not depend on the
// vector width, so every instruction set gives bit-identical results.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "featpool/element.hpp"
#include "featpool/pool.hpp"

namespace featpool::kernels {

// Partial sums a run of elements is dealt to (element k of a window to
// lane k mod kLanes), added pairwise at the end: a fixed number, whatever
// the vector width.
inline constexpr std::size_t kLanes = 16;
using lane_sums = std::array<double, kLanes>;

// What a maximum or minimum is kept in: the element type itself, which
// compares exactly, except halves, which widen exactly to float.
template <class T>
using max_t = std::conditional_t<std::is_same_v<T, float16_bits>, float, T>;

// An element as its maximum or minimum is kept.
template <class T>
max_t<T> as_max(T value) {
  if constexpr (std::is_same_v<T, float16_bits>) {
    return static_cast<float>(to_double(value));
  } else {
    return value;
  }
}

// The lanes' sum, added pairwise in a fixed order: lanes[i] += lanes[i + w]
// for w = 8, 4, 2, 1.
inline double lane_total(lane_sums lanes) {
  for (std::size_t width = kLanes / 2; width >= 1; width /= 2) {
    for (std::size_t i = 0; i < width; ++i) lanes[i] += lanes[i + width];
  }
  return lanes[0];
}

// The loops of a maximum, or of a minimum with "max" read as "min" and
// "larger" as "smaller" throughout.
template <class T>
struct extreme_kernels {
  // extremes[j] = max(extremes[j], rows[r·stride + j]) for r = 0, 1, …
  // count-1, for every j < width; a NaN makes the maximum NaN (PyTorch's
  // rule).
  void (*columns)(max_t<T>* extremes, const T* rows, std::size_t count, std::size_t stride,
                  std::size_t width);
  // lanes[(phase + k) mod kLanes] = max(that lane, values[k]) for k = 0, 1,
  // … count-1; a lane that meets a NaN becomes NaN.
  void (*lanes)(std::array<max_t<T>, kLanes>& lanes, const T* values, std::size_t count,
                std::size_t phase);
  // The maximum of `count` ≤ kLanes values dealt to the lanes from lane 0,
  // taken pairwise like lane_total's sums (the earlier lane wins a
  // tie, so -0 and +0 come out the same on every instruction set); NaN if
  // any value is NaN. Reads kLanes values whatever `count`.
  max_t<T> (*narrow_window)(const max_t<T>* values, std::size_t count);
  // For each window i < count: cells[i · cell_stride] = the maximum of
  // columns[starts[i]] … columns[ends[i] - 1], by narrow_window when it is
  // at most kLanes wide, else by a left-to-right fold into the cell (NaN
  // winning). Reads kLanes values from a window's start: the caller pads
  // its buffer.
  void (*windows)(max_t<T>* cells, std::size_t cell_stride, const max_t<T>* columns,
                  const std::uint64_t* starts, const std::uint64_t* ends, std::size_t count);
};

template <class T>
struct column_kernels {
  // sums[j] += rows[r·stride + j] for r = 0, 1, … count-1 in turn, for
  // every j < width, in double.
  void (*sum_columns)(double* sums, const T* rows, std::size_t count, std::size_t stride,
                      std::size_t width);
  // lanes[(phase + k) mod kLanes] += values[k] for k = 0, 1, … count-1.
  void (*sum_lanes)(lane_sums& lanes, const T* values, std::size_t count, std::size_t phase);
  // As sum_columns and sum_lanes, each element x taken as the generalized
  // mean's power clamp(x, min = eps)^p, in double: p = 3 as x·x·x, any
  // other p by std::pow. The same power of the same element as a separate
  // pass would give, added in the same order.
  void (*sum_power_columns)(double* sums, const T* rows, std::size_t count, std::size_t stride,
                            std::size_t width, const gem_params& gem);
  void (*sum_power_lanes)(lane_sums& lanes, const T* values, std::size_t count, std::size_t phase,
                          const gem_params& gem);
  extreme_kernels<T> max;
  extreme_kernels<T> min;
};

enum class instruction_set { baseline, avx2, avx512 };

std::string_view instruction_set_name(instruction_set isa);

struct kernel_set {
  instruction_set isa;
  // For each window i < count: cells[i · cell_stride] = the lane_total of
  // columns[starts[i]] … columns[ends[i] - 1] dealt to the lanes from lane
  // 0. Reads kLanes values from a window's start even when it is
  // narrower: the caller pads its buffer.
  void (*window_totals)(double* cells, std::size_t cell_stride, const double* columns,
                        const std::uint64_t* starts, const std::uint64_t* ends, std::size_t count);
  column_kernels<std::int8_t> i8;
  column_kernels<std::int16_t> i16;
  column_kernels<std::int32_t> i32;
  column_kernels<std::int64_t> i64;
  column_kernels<std::uint8_t> u8;
  column_kernels<std::uint16_t> u16;
  column_kernels<std::uint32_t> u32;
  column_kernels<std::uint64_t> u64;
  column_kernels<float16_bits> f16;
  column_kernels<float> f32;
  column_kernels<double> f64;

  template <class T>
  const column_kernels<T>& of() const {
    if constexpr (std::is_same_v<T, std::int8_t>) return i8;
    if constexpr (std::is_same_v<T, std::int16_t>) return i16;
    if constexpr (std::is_same_v<T, std::int32_t>) return i32;
    if constexpr (std::is_same_v<T, std::int64_t>) return i64;
    if constexpr (std::is_same_v<T, std::uint8_t>) return u8;
    if constexpr (std::is_same_v<T, std::uint16_t>) return u16;
    if constexpr (std::is_same_v<T, std::uint32_t>) return u32;
    if constexpr (std::is_same_v<T, std::uint64_t>) return u64;
    if constexpr (std::is_same_v<T, float16_bits>) return f16;
    if constexpr (std::is_same_v<T, float>) return f32;
    if constexpr (std::is_same_v<T, double>) return f64;
  }
};

// The kernels of one instruction set; defined only where it was compiled.
const kernel_set& baseline_kernels();
#if FEATPOOL_X86_KERNELS
const kernel_set& avx2_kernels();
const kernel_set& avx512_kernels();
#endif

// The kernels this process uses: the widest instruction set the processor
// has, or the one FEATPOOL_KERNELS names (baseline, avx2 or avx512; for
// testing every path on one machine). Chosen on the first call.
const kernel_set& active_kernels();

}  // namespace featpool::kernels
