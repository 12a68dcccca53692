// The pooling loops of column_kernels.hpp, written once and compiled into
// each instruction set's translation unit (kernels_*.cpp), which includes
// this file inside its own namespace with its own compiler flags and sets
// FEATPOOL_VECTOR_BYTES to its register width. GCC's vector extensions
// keep the code independent of that width: a column's elements are added
// in the same order whether 2, 4 or 8 columns share a register, and the
// kLanes partial sums are kLanes whatever the number of registers they
// take.
//
// Needs <algorithm>, <cmath>, <cstring>, <limits>, <utility> and, with F16C,
// <immintrin.h>.

constexpr std::size_t kVectorBytes = FEATPOOL_VECTOR_BYTES;
constexpr std::size_t kDoubles = kVectorBytes / sizeof(double);

// A vector of N elements of M (GCC takes vector_size on named element
// types only, not on a template parameter).
template <class M>
struct element_vector;
#define FEATPOOL_ELEMENT_VECTOR(M)                                                 \
  template <>                                                                      \
  struct element_vector<M> {                                                       \
    template <std::size_t Bytes>                                                   \
    struct of {                                                                    \
      typedef M type __attribute__((vector_size(Bytes)));                          \
      typedef M unaligned __attribute__((vector_size(Bytes), aligned(sizeof(M)))); \
    };                                                                             \
  }
FEATPOOL_ELEMENT_VECTOR(std::int8_t);
FEATPOOL_ELEMENT_VECTOR(std::int16_t);
FEATPOOL_ELEMENT_VECTOR(std::int32_t);
FEATPOOL_ELEMENT_VECTOR(std::int64_t);
FEATPOOL_ELEMENT_VECTOR(std::uint8_t);
FEATPOOL_ELEMENT_VECTOR(std::uint16_t);
FEATPOOL_ELEMENT_VECTOR(std::uint32_t);
FEATPOOL_ELEMENT_VECTOR(std::uint64_t);
FEATPOOL_ELEMENT_VECTOR(float);
FEATPOOL_ELEMENT_VECTOR(double);
#undef FEATPOOL_ELEMENT_VECTOR

template <class M, std::size_t N>
using vec = typename element_vector<M>::template of<N * sizeof(M)>::type;
using f64v = vec<double, kDoubles>;

// Register-sized loads and stores at any element-aligned address.
template <class V, class M>
inline V load(const M* p) {
  using unaligned = typename element_vector<M>::template of<sizeof(V)>::unaligned;
  return *reinterpret_cast<const unaligned*>(p);
}

template <class V, class M>
inline void store(M* p, V v) {
  using unaligned = typename element_vector<M>::template of<sizeof(V)>::unaligned;
  *reinterpret_cast<unaligned*>(p) = v;
}

// v with its elements moved down by Width: element i holds v[i + Width]
// (the last Width elements keep what they held).
template <std::size_t Width, class V, std::size_t... I>
inline V shifted_down(V v, std::index_sequence<I...>) {
  constexpr std::size_t kCount = sizeof...(I);
  return __builtin_shufflevector(v, v, (I + Width < kCount ? I + Width : I)...);
}

// A register's elements combined pairwise into element 0: v[i] =
// combine(v[i], v[i + w]) for w = Width, Width / 2, … 1.
template <std::size_t Width, class V, class Combine>
inline V fold_pairwise(V v, Combine combine) {
  if constexpr (Width == 0) {
    return v;
  } else {
    constexpr std::size_t kCount = sizeof(V) / sizeof(v[0]);
    V moved = shifted_down<Width>(v, std::make_index_sequence<kCount>{});
    return fold_pairwise<Width / 2>(combine(v, moved), combine);
  }
}

// N consecutive halves as floats.
template <std::size_t N>
inline vec<float, N> halves_to_floats(const float16_bits* p) {
  vec<float, N> v;
#if defined(__F16C__)
  if constexpr (N == 16 && kVectorBytes >= 64) {
    __m512 wide = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    std::memcpy(&v, &wide, sizeof v);
    return v;
  } else if constexpr (N == 8) {
    __m256 wide = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    std::memcpy(&v, &wide, sizeof v);
    return v;
  } else if constexpr (N == 4) {
    __m128 wide = _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    std::memcpy(&v, &wide, sizeof v);
    return v;
  }
#endif
  for (std::size_t i = 0; i < N; ++i) v[i] = static_cast<float>(to_double(p[i]));
  return v;
}

// N consecutive 8- or 16-bit integers as 32-bit ones. GCC widens such
// vectors an element at a time unless told which instruction to use.
template <std::size_t N, class T>
inline vec<std::int32_t, N> narrow_to_int32(const T* p) {
  vec<std::int32_t, N> v;
#if defined(__AVX2__)
  if constexpr (N == 8) {
    __m256i wide;
    if constexpr (std::is_same_v<T, std::uint8_t>) {
      wide = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    } else if constexpr (std::is_same_v<T, std::int8_t>) {
      wide = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    } else if constexpr (std::is_same_v<T, std::uint16_t>) {
      wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    } else {
      wide = _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    std::memcpy(&v, &wide, sizeof v);
    return v;
  } else if constexpr (N == 4) {
    // Loaded as a zero-extended scalar, not merged into a register's old
    // contents, which would chain every load to the previous one.
    __m128i narrow;
    if constexpr (sizeof(T) == 1) {
      std::int32_t bytes;
      std::memcpy(&bytes, p, sizeof bytes);
      narrow = _mm_cvtsi32_si128(bytes);
    } else {
      narrow = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    }
    __m128i wide;
    if constexpr (std::is_same_v<T, std::uint8_t>) {
      wide = _mm_cvtepu8_epi32(narrow);
    } else if constexpr (std::is_same_v<T, std::int8_t>) {
      wide = _mm_cvtepi8_epi32(narrow);
    } else if constexpr (std::is_same_v<T, std::uint16_t>) {
      wide = _mm_cvtepu16_epi32(narrow);
    } else {
      wide = _mm_cvtepi16_epi32(narrow);
    }
    std::memcpy(&v, &wide, sizeof v);
    return v;
  }
#endif
  for (std::size_t i = 0; i < N; ++i) v[i] = p[i];
  return v;
}

// N consecutive elements as doubles.
template <std::size_t N = kDoubles, class T>
inline vec<double, N> widen(const T* p) {
  using wide = vec<double, N>;
  if constexpr (std::is_same_v<T, double>) {
    wide v;
    std::memcpy(&v, p, sizeof v);
    return v;
  } else if constexpr (std::is_same_v<T, float16_bits>) {
    return __builtin_convertvector(halves_to_floats<N>(p), wide);
#if defined(__AVX__)
  } else if constexpr (std::is_same_v<T, float> && N == 4) {
    // GCC lowers the generic conversion to two 128-bit halves here.
    return reinterpret_cast<wide>(_mm256_cvtps_pd(_mm_loadu_ps(p)));
#endif
#if defined(__AVX512F__)
  } else if constexpr (std::is_same_v<T, float> && N == 8) {
    return reinterpret_cast<wide>(_mm512_cvtps_pd(_mm256_loadu_ps(p)));
#endif
  } else if constexpr (std::is_integral_v<T> && sizeof(T) < sizeof(std::int32_t)) {
    // Through 32-bit integers, which convert exactly.
    vec<std::int32_t, N> v = narrow_to_int32<N>(p);
#if defined(__AVX__)
    // GCC lowers the generic conversion to 128-bit halves here too.
    if constexpr (N == 4)
      return reinterpret_cast<wide>(_mm256_cvtepi32_pd(reinterpret_cast<__m128i>(v)));
#endif
#if defined(__AVX512F__)
    if constexpr (N == 8)
      return reinterpret_cast<wide>(_mm512_cvtepi32_pd(reinterpret_cast<__m256i>(v)));
#endif
    return __builtin_convertvector(v, wide);
  } else {
    vec<T, N> v;
    std::memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, wide);
  }
}

// What a sum adds for each element, given as a double or a register of
// doubles: the element itself, or the generalized mean's power of it. A
// NaN stays NaN, as in torch's clamp.
struct as_is {
  template <class V>
  V operator()(V x) const {
    return x;
  }
};

// clamp(x, min = eps)^3, by two multiplications: the usual p.
struct clamped_cube {
  double eps;
  template <class V>
  V operator()(V x) const {
    const V floor = V{} + eps;
    x = x < floor ? floor : x;
    return x * x * x;
  }
};

// clamp(x, min = eps)^p for any other p, an element at a time.
struct clamped_power {
  double eps;
  double p;
  template <class V>
  V operator()(V x) const {
    if constexpr (std::is_same_v<V, double>) {
      return std::pow(x < eps ? eps : x, p);
    } else {
      for (std::size_t i = 0; i < sizeof(V) / sizeof(double); ++i) x[i] = (*this)(double{x[i]});
      return x;
    }
  }
};

// Sums R registers of W adjacent columns each over `count` rows. The R
// sums are independent chains, so their additions overlap in the
// processor; each column still adds its rows in order.
template <std::size_t R, std::size_t W, class T, class Raise>
inline void sum_column_pass(double* sums, const T* rows, std::size_t count, std::size_t stride,
                            Raise raise) {
  using wide = vec<double, W>;
  wide a[R];
  for (std::size_t v = 0; v < R; ++v) a[v] = load<wide>(sums + v * W);
  for (std::size_t r = 0; r < count; ++r, rows += stride) {
    for (std::size_t v = 0; v < R; ++v) a[v] += raise(widen<W>(rows + v * W));
  }
  for (std::size_t v = 0; v < R; ++v) store(sums + v * W, a[v]);
}

// The last columns, fewer than a register: halves, quarters, … of a
// register, then one by one.
template <std::size_t W, class T, class Raise>
inline void sum_narrow_columns(double* sums, const T* rows, std::size_t count, std::size_t stride,
                               std::size_t width, Raise raise) {
  if constexpr (W >= 2) {
    if (width >= W) {
      sum_column_pass<1, W>(sums, rows, count, stride, raise);
      sums += W;
      rows += W;
      width -= W;
    }
    sum_narrow_columns<W / 2>(sums, rows, count, stride, width, raise);
  } else if (width == 1) {
    double a = *sums;
    for (std::size_t r = 0; r < count; ++r, rows += stride) a += raise(to_double(*rows));
    *sums = a;
  }
}

template <class T, class Raise>
void sum_raised_columns(double* sums, const T* rows, std::size_t count, std::size_t stride,
                        std::size_t width, Raise raise) {
  // Rows are taken a slab at a time, so a wide tensor's rows stay in the
  // cache while every pass goes over them.
  constexpr std::size_t kSlabBytes = std::size_t{64} << 10;
  const std::size_t row_bytes = stride * sizeof(T);
  const std::size_t slab =
      count * row_bytes <= kSlabBytes ? count : std::max<std::size_t>(1, kSlabBytes / row_bytes);
  const std::size_t registers = width / kDoubles;
  // Up to kPassRegisters registers a pass, spread evenly: a pass of one
  // register would wait on its additions' latency, and fewer passes read
  // the rows fewer times.
  constexpr std::size_t kPassRegisters = 8;
  using pass_function = void (*)(double*, const T*, std::size_t, std::size_t, Raise);
  static constexpr pass_function kPasses[kPassRegisters + 1] = {
      nullptr,
      &sum_column_pass<1, kDoubles, T, Raise>,
      &sum_column_pass<2, kDoubles, T, Raise>,
      &sum_column_pass<3, kDoubles, T, Raise>,
      &sum_column_pass<4, kDoubles, T, Raise>,
      &sum_column_pass<5, kDoubles, T, Raise>,
      &sum_column_pass<6, kDoubles, T, Raise>,
      &sum_column_pass<7, kDoubles, T, Raise>,
      &sum_column_pass<8, kDoubles, T, Raise>,
  };
  const std::size_t whole = registers * kDoubles;
  if (slab == count && registers <= kPassRegisters) {
    // One slab, one pass (channels-last rows of up to 64 floats, say):
    // no division for the small calls where it would show.
    if (registers != 0) kPasses[registers](sums, rows, count, stride, raise);
    if (whole < width) {
      sum_narrow_columns<kDoubles / 2>(sums + whole, rows + whole, count, stride, width - whole,
                                       raise);
    }
    return;
  }
  const std::size_t passes = (registers + kPassRegisters - 1) / kPassRegisters;
  for (std::size_t first = 0; first < count; first += slab) {
    const std::size_t rows_now = std::min(slab, count - first);
    const T* base = rows + first * stride;
    std::size_t done = 0;
    for (std::size_t pass = 0; pass < passes; ++pass) {
      std::size_t take = registers * (pass + 1) / passes - registers * pass / passes;
      std::size_t j = done * kDoubles;
      kPasses[take](sums + j, base + j, rows_now, stride, raise);
      done += take;
    }
    if (whole < width) {
      sum_narrow_columns<kDoubles / 2>(sums + whole, base + whole, rows_now, stride, width - whole,
                                       raise);
    }
  }
}

// Which of two values an extreme keeps (the larger for a maximum, the
// smaller for a minimum; lanes of a mask for vectors), and what it starts
// from: a value every other beats or ties, infinity included.
template <bool Min>
struct extreme_order {
  template <class V>
  static auto beats(V a, V b) {
    if constexpr (Min) {
      return a < b;
    } else {
      return a > b;
    }
  }
  template <class M>
  static constexpr M worst() {
    if constexpr (std::is_floating_point_v<M>) {
      return Min ? std::numeric_limits<M>::infinity() : -std::numeric_limits<M>::infinity();
    } else {
      return Min ? std::numeric_limits<M>::max() : std::numeric_limits<M>::lowest();
    }
  }
};

// N consecutive elements as their extremes are kept.
template <std::size_t N, class T>
inline vec<max_t<T>, N> extreme_elements(const T* p) {
  if constexpr (std::is_same_v<T, float16_bits>) {
    return halves_to_floats<N>(p);
  } else {
    return load<vec<T, N>>(p);
  }
}

// Takes the extremes of R registers of W adjacent columns each over
// `count` rows, as independent chains.
template <bool Min, std::size_t R, std::size_t W, class T>
inline void extreme_column_pass(max_t<T>* extremes, const T* rows, std::size_t count,
                                std::size_t stride) {
  using M = max_t<T>;
  using V = vec<M, W>;
  using mask = decltype(V{} > V{});
  V m[R];
  mask nan[R] = {};
  for (std::size_t v = 0; v < R; ++v) m[v] = load<V>(extremes + v * W);
  for (std::size_t r = 0; r < count; ++r, rows += stride) {
    for (std::size_t v = 0; v < R; ++v) {
      V x = extreme_elements<W>(rows + v * W);
      m[v] = extreme_order<Min>::beats(x, m[v]) ? x : m[v];
      // Comparisons pass NaN over; a flag remembers it instead, which
      // keeps the loop free of branches.
      if constexpr (std::is_floating_point_v<M>) nan[v] |= x != x;
    }
  }
  for (std::size_t v = 0; v < R; ++v) {
    if constexpr (std::is_floating_point_v<M>)
      m[v] = nan[v] ? V{} + std::numeric_limits<M>::quiet_NaN() : m[v];
    store(extremes + v * W, m[v]);
  }
}

// The last columns, fewer than a register, as sum_narrow_columns.
template <bool Min, std::size_t W, class T>
inline void extreme_narrow_columns(max_t<T>* extremes, const T* rows, std::size_t count,
                                   std::size_t stride, std::size_t width) {
  if constexpr (W >= 2) {
    if (width >= W) {
      extreme_column_pass<Min, 1, W>(extremes, rows, count, stride);
      extremes += W;
      rows += W;
      width -= W;
    }
    extreme_narrow_columns<Min, W / 2>(extremes, rows, count, stride, width);
  } else if (width == 1) {
    using M = max_t<T>;
    M m = *extremes;
    bool nan = false;
    for (std::size_t r = 0; r < count; ++r, rows += stride) {
      M x = as_max(*rows);
      m = extreme_order<Min>::beats(x, m) ? x : m;
      if constexpr (std::is_floating_point_v<M>) nan |= x != x;
    }
    if constexpr (std::is_floating_point_v<M>) m = nan ? std::numeric_limits<M>::quiet_NaN() : m;
    *extremes = m;
  }
}

template <bool Min, class T>
void extreme_columns(max_t<T>* extremes, const T* rows, std::size_t count, std::size_t stride,
                     std::size_t width) {
  constexpr std::size_t kWidth = kVectorBytes / sizeof(max_t<T>);
  // Four registers a pass: a comparison and a select a row each, so four
  // chains hide their latency.
  constexpr std::size_t kPassRegisters = 4;
  std::size_t j = 0;
  for (; j + kPassRegisters * kWidth <= width; j += kPassRegisters * kWidth) {
    extreme_column_pass<Min, kPassRegisters, kWidth>(extremes + j, rows + j, count, stride);
  }
  for (; j + kWidth <= width; j += kWidth) {
    extreme_column_pass<Min, 1, kWidth>(extremes + j, rows + j, count, stride);
  }
  extreme_narrow_columns<Min, kWidth / 2>(extremes + j, rows + j, count, stride, width - j);
}

template <class T, class Raise>
void sum_raised_lanes(lane_sums& lanes, const T* values, std::size_t count, std::size_t phase,
                      Raise raise) {
  constexpr std::size_t kRegisters = kLanes / kDoubles;
  std::size_t k = 0;
  for (; k < count && (phase + k) % kLanes != 0; ++k) {
    lanes[(phase + k) % kLanes] += raise(to_double(values[k]));
  }
  f64v a[kRegisters];
  for (std::size_t v = 0; v < kRegisters; ++v) {
    a[v] = load<f64v>(lanes.data() + v * kDoubles);
  }
  for (; k + kLanes <= count; k += kLanes) {
    for (std::size_t v = 0; v < kRegisters; ++v) a[v] += raise(widen(values + k + v * kDoubles));
  }
  for (std::size_t v = 0; v < kRegisters; ++v) {
    store(lanes.data() + v * kDoubles, a[v]);
  }
  for (; k < count; ++k) lanes[(phase + k) % kLanes] += raise(to_double(values[k]));
}

template <class T>
void sum_columns(double* sums, const T* rows, std::size_t count, std::size_t stride,
                 std::size_t width) {
  sum_raised_columns(sums, rows, count, stride, width, as_is{});
}

template <class T>
void sum_lanes(lane_sums& lanes, const T* values, std::size_t count, std::size_t phase) {
  sum_raised_lanes(lanes, values, count, phase, as_is{});
}

template <class T>
void sum_power_columns(double* sums, const T* rows, std::size_t count, std::size_t stride,
                       std::size_t width, const gem_params& gem) {
  if (gem.p == 3.0) {
    sum_raised_columns(sums, rows, count, stride, width, clamped_cube{gem.eps});
  } else {
    sum_raised_columns(sums, rows, count, stride, width, clamped_power{gem.eps, gem.p});
  }
}

template <class T>
void sum_power_lanes(lane_sums& lanes, const T* values, std::size_t count, std::size_t phase,
                     const gem_params& gem) {
  if (gem.p == 3.0) {
    sum_raised_lanes(lanes, values, count, phase, clamped_cube{gem.eps});
  } else {
    sum_raised_lanes(lanes, values, count, phase, clamped_power{gem.eps, gem.p});
  }
}

// lane_total of at most kLanes columns, one per lane: the empty lanes only
// add +0, which changes nothing (a column sum, begun at +0, is never -0).
inline double narrow_window_total(const double* columns, std::size_t count) {
  // The lanes in registers, each holding its column or, past the window,
  // 0 (selected, not multiplied: what lies past the window may be NaN).
  // At most 32-byte registers: on processors that split 64-byte
  // operations in two, the shuffles of a wider tree cost more than they
  // save.
  constexpr std::size_t kWidth = std::min<std::size_t>(kVectorBytes, 32) / sizeof(double);
  constexpr std::size_t kRegisters = kLanes / kWidth;
  using V = vec<double, kWidth>;
  using index_vector = vec<std::int64_t, kWidth>;
  index_vector index{};
  for (std::size_t i = 0; i < kWidth; ++i) index[i] = static_cast<std::int64_t>(i);
  V lanes[kRegisters];
  for (std::size_t v = 0; v < kRegisters; ++v) {
    V loaded = load<V>(columns + v * kWidth);
    auto inside = index + static_cast<std::int64_t>(v * kWidth) < static_cast<std::int64_t>(count);
    lanes[v] = inside ? loaded : V{};
  }
  // Pairwise, as lane_total: lanes[i] += lanes[i + width] for width = 8,
  // 4, 2, 1, first whole registers, then within the last one.
  for (std::size_t width = kRegisters / 2; width >= 1; width /= 2) {
    for (std::size_t v = 0; v < width; ++v) lanes[v] += lanes[v + width];
  }
  return fold_pairwise<kWidth / 2>(lanes[0], [](V a, V b) { return a + b; })[0];
}

void window_totals(double* cells, std::size_t cell_stride, const double* columns,
                   const std::uint64_t* starts, const std::uint64_t* ends, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    const double* window = columns + starts[i];
    std::size_t size = ends[i] - starts[i];
    if (size <= kLanes) {
      cells[i * cell_stride] = narrow_window_total(window, size);
    } else {
      lane_sums lanes{};
      sum_lanes(lanes, window, size, 0);
      cells[i * cell_stride] = lane_total(lanes);
    }
  }
}

template <bool Min, class T>
void extreme_lanes(std::array<max_t<T>, kLanes>& lanes, const T* values, std::size_t count,
                   std::size_t phase) {
  using M = max_t<T>;
  constexpr std::size_t kWidth = std::min(kLanes, kVectorBytes / sizeof(M));
  constexpr std::size_t kRegisters = kLanes / kWidth;
  constexpr bool floating = std::is_floating_point_v<M>;
  using V = vec<M, kWidth>;
  using mask = decltype(V{} > V{});
  auto fold = [](M& lane, M x) {
    if (extreme_order<Min>::beats(x, lane) || (floating && x != x)) lane = x;
  };
  std::size_t k = 0;
  for (; k < count && (phase + k) % kLanes != 0; ++k)
    fold(lanes[(phase + k) % kLanes], as_max(values[k]));
  V m[kRegisters];
  mask nan[kRegisters] = {};
  for (std::size_t v = 0; v < kRegisters; ++v) m[v] = load<V>(lanes.data() + v * kWidth);
  for (; k + kLanes <= count; k += kLanes) {
    for (std::size_t v = 0; v < kRegisters; ++v) {
      V x;
      if constexpr (std::is_same_v<T, float16_bits>) {
        x = halves_to_floats<kWidth>(values + k + v * kWidth);
      } else {
        x = load<V>(values + k + v * kWidth);
      }
      m[v] = extreme_order<Min>::beats(x, m[v]) ? x : m[v];
      if constexpr (floating) nan[v] |= x != x;
    }
  }
  for (std::size_t v = 0; v < kRegisters; ++v) {
    if constexpr (floating) m[v] = nan[v] ? V{} + std::numeric_limits<M>::quiet_NaN() : m[v];
    store(lanes.data() + v * kWidth, m[v]);
  }
  for (; k < count; ++k) fold(lanes[(phase + k) % kLanes], as_max(values[k]));
}

template <bool Min, class T>
max_t<T> narrow_window_extreme(const max_t<T>* columns, std::size_t count) {
  using M = max_t<T>;
  // At most 32-byte registers, as narrow_window_total.
  constexpr std::size_t kWidth =
      std::min(kLanes, std::min<std::size_t>(kVectorBytes, 32) / sizeof(M));
  constexpr std::size_t kRegisters = kLanes / kWidth;
  constexpr bool floating = std::is_floating_point_v<M>;
  using V = vec<M, kWidth>;
  using index_vector = decltype(V{} > V{});
  using index_type = std::remove_reference_t<decltype(index_vector{}[0])>;
  index_vector index{};
  for (std::size_t i = 0; i < kWidth; ++i) index[i] = static_cast<index_type>(i);
  // What an empty lane holds: a value every other beats or ties.
  constexpr M worst = extreme_order<Min>::template worst<M>();
  V lanes[kRegisters];
  for (std::size_t v = 0; v < kRegisters; ++v) {
    V loaded = load<V>(columns + v * kWidth);
    auto inside = index + static_cast<index_type>(v * kWidth) < static_cast<index_type>(count);
    lanes[v] = inside ? loaded : V{} + worst;
  }
  // Pairwise over the lanes, as the sums: lanes[i] = max(lanes[i],
  // lanes[i + w]) for w = 8, 4, 2, 1 (or min), the earlier lane kept on a
  // tie and a NaN always taken, so that one reaches lane 0.
  auto keep_extreme = [](V earlier, V later) {
    auto take = extreme_order<Min>::beats(later, earlier);
    if constexpr (floating) take |= later != later;
    return take ? later : earlier;
  };
  for (std::size_t width = kRegisters / 2; width >= 1; width /= 2) {
    for (std::size_t v = 0; v < width; ++v) lanes[v] = keep_extreme(lanes[v], lanes[v + width]);
  }
  M result = fold_pairwise<kWidth / 2>(lanes[0], keep_extreme)[0];
  if constexpr (floating) {
    if (result != result) return std::numeric_limits<M>::quiet_NaN();
  }
  return result;
}

template <bool Min, class T>
void window_extremes(max_t<T>* cells, std::size_t cell_stride, const max_t<T>* columns,
                     const std::uint64_t* starts, const std::uint64_t* ends, std::size_t count) {
  using M = max_t<T>;
  for (std::size_t i = 0; i < count; ++i) {
    const M* window = columns + starts[i];
    std::size_t size = ends[i] - starts[i];
    if (size <= kLanes) {
      cells[i * cell_stride] = narrow_window_extreme<Min, T>(window, size);
      continue;
    }
    // Wider windows: a left-to-right fold, NaN winning.
    M m = cells[i * cell_stride];
    for (std::size_t x = 0; x < size; ++x) {
      if (extreme_order<Min>::beats(window[x], m) ||
          (std::is_floating_point_v<M> && window[x] != window[x])) {
        m = window[x];
      }
    }
    cells[i * cell_stride] = m;
  }
}

template <bool Min, class T>
constexpr extreme_kernels<T> extreme_kernels_for() {
  return {&extreme_columns<Min, T>, &extreme_lanes<Min, T>, &narrow_window_extreme<Min, T>,
          &window_extremes<Min, T>};
}

template <class T>
constexpr column_kernels<T> kernels_for() {
  return {&sum_columns<T>,
          &sum_lanes<T>,
          &sum_power_columns<T>,
          &sum_power_lanes<T>,
          extreme_kernels_for<false, T>(),
          extreme_kernels_for<true, T>()};
}

inline const kernel_set& kernels_of(instruction_set isa) {
  static const kernel_set set{
      isa,
      &window_totals,
      kernels_for<std::int8_t>(),
      kernels_for<std::int16_t>(),
      kernels_for<std::int32_t>(),
      kernels_for<std::int64_t>(),
      kernels_for<std::uint8_t>(),
      kernels_for<std::uint16_t>(),
      kernels_for<std::uint32_t>(),
      kernels_for<std::uint64_t>(),
      kernels_for<float16_bits>(),
      kernels_for<float>(),
      kernels_for<double>(),
  };
  return set;
}
