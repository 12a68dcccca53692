#pragma once
// Typed access to the raw blocks readers hand out: dispatch on the dtype once
// per block, then loop over plain C++ values with no per-element branching
// on the type.

#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
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

// Rounds a double to the nearest half, ties to even, as numpy's
// astype(float16) does (directly, not through float, which would round twice).
inline float16_bits to_float16(double value) {
  std::uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  auto sign = static_cast<std::uint16_t>((bits >> 48) & 0x8000u);
  auto exponent = static_cast<int>((bits >> 52) & 0x7ff);
  std::uint64_t mantissa = bits & ((std::uint64_t{1} << 52) - 1);
  if (exponent == 0x7ff) return {static_cast<std::uint16_t>(sign | (mantissa ? 0x7e00u : 0x7c00u))};
  int half_exponent = exponent - 1023 + 15;
  if (exponent == 0 || half_exponent < -11) return {sign};  // rounds to zero
  if (half_exponent >= 31) return {static_cast<std::uint16_t>(sign | 0x7c00u)};
  std::uint64_t significand = mantissa | (std::uint64_t{1} << 52);
  int shift = half_exponent >= 1 ? 42 : 42 + 1 - half_exponent;
  std::uint64_t kept = significand >> shift;
  std::uint64_t rest = significand & ((std::uint64_t{1} << shift) - 1);
  std::uint64_t halfway = std::uint64_t{1} << (shift - 1);
  if (rest > halfway || (rest == halfway && (kept & 1))) ++kept;
  if (half_exponent < 1) {  // subnormal; rounding up may reach the smallest normal
    return {static_cast<std::uint16_t>(sign | kept)};
  }
  if (kept == (std::uint64_t{1} << 11)) {
    kept >>= 1;
    ++half_exponent;
    if (half_exponent >= 31) return {static_cast<std::uint16_t>(sign | 0x7c00u)};
  }
  return {static_cast<std::uint16_t>(sign | (static_cast<unsigned>(half_exponent) << 10) |
                                     (kept & 0x3ffu))};
}

template <class T>
inline double to_double(T value) {
  return static_cast<double>(value);
}

// Reverses the bytes of every element of `item_size` bytes (1, 2, 4 or
// 8): data stored in the other byte order, made native.
inline void swap_byte_order(std::span<std::byte> bytes, std::size_t item_size) {
  auto swap_each = [&]<class U>(U (*reverse)(U)) {
    for (std::size_t i = 0; i + sizeof(U) <= bytes.size(); i += sizeof(U)) {
      U value;
      std::memcpy(&value, bytes.data() + i, sizeof value);
      value = reverse(value);
      std::memcpy(bytes.data() + i, &value, sizeof value);
    }
  };
  switch (item_size) {
    case 2:
      swap_each(+[](std::uint16_t v) { return __builtin_bswap16(v); });
      break;
    case 4:
      swap_each(+[](std::uint32_t v) { return __builtin_bswap32(v); });
      break;
    case 8:
      swap_each(+[](std::uint64_t v) { return __builtin_bswap64(v); });
      break;
    default:  // single bytes have no order
      break;
  }
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
    case dtype::bfloat16:
      // Widened to float32 when read (bfloat16.hpp), never computed on as is.
      throw std::logic_error("visit_dtype: bfloat16 must be widened to float32 first");
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
