#include "h5_filters.hpp"

#include <algorithm>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace featpool::detail {
namespace {

using u8 = unsigned char;

// Interleaves 16 elements of S bytes from S planes `stride` bytes apart.
template <std::size_t S>
void interleave16(const u8* in, std::size_t stride, u8* out) {
#if defined(__SSE2__)
  auto load = [&](std::size_t plane) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + plane * stride));
  };
  auto store = [&](std::size_t index, __m128i value) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out) + index, value);
  };
  if constexpr (S == 2) {
    __m128i a = load(0), b = load(1);
    store(0, _mm_unpacklo_epi8(a, b));
    store(1, _mm_unpackhi_epi8(a, b));
    return;
  } else if constexpr (S == 4) {
    __m128i a = load(0), b = load(1), c = load(2), d = load(3);
    __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
    __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
    store(0, _mm_unpacklo_epi16(ab_lo, cd_lo));
    store(1, _mm_unpackhi_epi16(ab_lo, cd_lo));
    store(2, _mm_unpacklo_epi16(ab_hi, cd_hi));
    store(3, _mm_unpackhi_epi16(ab_hi, cd_hi));
    return;
  } else if constexpr (S == 8) {
    __m128i pairs[8];  // planes 2i and 2i+1: elements 0-7, then 8-15
    for (std::size_t i = 0; i < 4; ++i) {
      __m128i even = load(2 * i), odd = load(2 * i + 1);
      pairs[2 * i] = _mm_unpacklo_epi8(even, odd);
      pairs[2 * i + 1] = _mm_unpackhi_epi8(even, odd);
    }
    for (std::size_t half = 0; half < 2; ++half) {  // elements 0-7, then 8-15
      // Bytes 0-3 and 4-7 of four elements each.
      __m128i low0 = _mm_unpacklo_epi16(pairs[half], pairs[2 + half]);
      __m128i low1 = _mm_unpackhi_epi16(pairs[half], pairs[2 + half]);
      __m128i high0 = _mm_unpacklo_epi16(pairs[4 + half], pairs[6 + half]);
      __m128i high1 = _mm_unpackhi_epi16(pairs[4 + half], pairs[6 + half]);
      store(4 * half + 0, _mm_unpacklo_epi32(low0, high0));
      store(4 * half + 1, _mm_unpackhi_epi32(low0, high0));
      store(4 * half + 2, _mm_unpacklo_epi32(low1, high1));
      store(4 * half + 3, _mm_unpackhi_epi32(low1, high1));
    }
    return;
  }
#endif
  for (std::size_t e = 0; e < 16; ++e) {
    for (std::size_t b = 0; b < S; ++b) out[e * S + b] = in[b * stride + e];
  }
}

// Writes elements [0, count) of S bytes from S planes of `planes` bytes.
template <std::size_t S>
void unshuffle_fixed(const u8* in, std::size_t planes, u8* out, std::size_t count) {
  std::size_t e = 0;
  for (; e + 16 <= count; e += 16) interleave16<S>(in + e, planes, out + e * S);
  for (; e < count; ++e) {
    for (std::size_t b = 0; b < S; ++b) out[e * S + b] = in[b * planes + e];
  }
}

void unshuffle_any(const u8* in, std::size_t planes, std::size_t size, u8* out, std::size_t count) {
  for (std::size_t e = 0; e < count; ++e) {
    for (std::size_t b = 0; b < size; ++b) out[e * size + b] = in[b * planes + e];
  }
}

void reduce(std::uint32_t& sum) { sum = (sum & 0xffff) + (sum >> 16); }

std::uint32_t load_le32(const u8* p) {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
         std::uint32_t{p[3]} << 24;
}

}  // namespace

void unshuffle(std::span<const std::byte> in, std::span<std::byte> out, std::size_t element_size) {
  const auto* src = reinterpret_cast<const u8*>(in.data());
  auto* dst = reinterpret_cast<u8*>(out.data());
  std::size_t wanted = std::min(out.size(), in.size());
  std::size_t planes = element_size == 0 ? 0 : in.size() / element_size;
  if (element_size <= 1 || planes <= 1) {
    std::memcpy(dst, src, wanted);
    return;
  }
  std::size_t whole = std::min(planes, wanted / element_size);
  switch (element_size) {
    case 2:
      unshuffle_fixed<2>(src, planes, dst, whole);
      break;
    case 4:
      unshuffle_fixed<4>(src, planes, dst, whole);
      break;
    case 8:
      unshuffle_fixed<8>(src, planes, dst, whole);
      break;
    default:
      unshuffle_any(src, planes, element_size, dst, whole);
      break;
  }
  std::size_t done = whole * element_size;
  if (whole < planes) {
    // Part of one more element.
    for (std::size_t b = 0; done + b < wanted; ++b) dst[done + b] = src[b * planes + whole];
    return;
  }
  // The bytes after the last whole element, unshuffled.
  if (wanted > done) std::memcpy(dst + done, src + done, wanted - done);
}

std::uint32_t fletcher32(std::span<const std::byte> data) {
  const auto* p = reinterpret_cast<const u8*>(data.data());
  std::size_t words = data.size() / 2;
  std::uint32_t sum1 = 0;
  std::uint32_t sum2 = 0;
  // 360 words at most between reductions keep both sums within 32 bits.
  while (words > 0) {
    std::size_t run = std::min<std::size_t>(words, 360);
    words -= run;
    for (std::size_t i = 0; i < run; ++i, p += 2) {
      sum1 += std::uint32_t{p[0]} << 8 | std::uint32_t{p[1]};
      sum2 += sum1;
    }
    reduce(sum1);
    reduce(sum2);
  }
  if (data.size() % 2 != 0) {
    sum1 += std::uint32_t{*p} << 8;
    sum2 += sum1;
    reduce(sum1);
    reduce(sum2);
  }
  reduce(sum1);
  reduce(sum2);
  return sum2 << 16 | sum1;
}

bool fletcher32_matches(std::span<const std::byte> chunk) {
  if (chunk.size() < 4) return false;
  std::size_t size = chunk.size() - 4;
  std::uint32_t stored = load_le32(reinterpret_cast<const u8*>(chunk.data()) + size);
  std::uint32_t computed = fletcher32(chunk.first(size));
  std::uint32_t half_swapped = (computed & 0x00ff00ffu) << 8 | (computed >> 8 & 0x00ff00ffu);
  return stored == computed || stored == half_swapped;
}

}  // namespace featpool::detail
