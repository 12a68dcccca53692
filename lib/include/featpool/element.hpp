#pragma once
// Typed access to the raw blocks readers hand out: dispatch on the dtype once
// per block, then loop over plain C++ values with no per-element branching
// on the type.

#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include "featpool/dtype.hpp"

namespace featpool {

// An IEEE 754 half-precision value, kept as its bits: C++20 has no portable
// half type, and the only thing featpool does with one is widen it.
struct float16_bits {
  std::uint16_t bits;
};

// Exact widening of a half to double (every half is a double).
inline double to_double(float16_bits h) {
  std::uint32_t sign = (h.bits >> 15) & 1u;
  std::uint32_t exponent = (h.bits >> 10) & 0x1fu;
  std::uint32_t mantissa = h.bits & 0x3ffu;
  std::uint64_t out_sign = std::uint64_t{sign} << 63;
  std::uint64_t out;
  if (exponent == 0x1f) {  // Inf and NaN keep their payload
    out = out_sign | (std::uint64_t{0x7ff} << 52) | (std::uint64_t{mantissa} << 42);
  } else if (exponent != 0) {
    out = out_sign | (std::uint64_t{exponent - 15 + 1023} << 52) | (std::uint64_t{mantissa} << 42);
  } else if (mantissa == 0) {
    out = out_sign;
  } else {  // subnormal: mantissa × 2^-24, exact in double
    double magnitude = static_cast<double>(mantissa) * 0x1p-24;
    return sign ? -magnitude : magnitude;
  }
  double value;
  std::memcpy(&value, &out, sizeof value);
  return value;
}

template <class T>
inline double to_double(T value) {
  return static_cast<double>(value);
}

// Calls fn(std::type_identity<T>{}) with the element type of `type`.
template <class F>
decltype(auto) visit_dtype(dtype type, F&& fn) {
  switch (type) {
    case dtype::bool_:
      return fn(std::type_identity<std::uint8_t>{});
    case dtype::int8:
      return fn(std::type_identity<std::int8_t>{});
    case dtype::int16:
      return fn(std::type_identity<std::int16_t>{});
    case dtype::int32:
      return fn(std::type_identity<std::int32_t>{});
    case dtype::int64:
      return fn(std::type_identity<std::int64_t>{});
    case dtype::uint8:
      return fn(std::type_identity<std::uint8_t>{});
    case dtype::uint16:
      return fn(std::type_identity<std::uint16_t>{});
    case dtype::uint32:
      return fn(std::type_identity<std::uint32_t>{});
    case dtype::uint64:
      return fn(std::type_identity<std::uint64_t>{});
    case dtype::float16:
      return fn(std::type_identity<float16_bits>{});
    case dtype::float32:
      return fn(std::type_identity<float>{});
    case dtype::float64:
      break;
  }
  return fn(std::type_identity<double>{});
}

// A block's bytes seen as elements of T. Blocks come from buffers allocated
// for the widest element type, so they are suitably aligned.
template <class T>
std::span<const T> elements_of(std::span<const std::byte> block) {
  return {reinterpret_cast<const T*>(block.data()), block.size() / sizeof(T)};
}

}  // namespace featpool
