// Chunked datasets whose chunks are slabs of the C-order data, decoded here
// instead of by HDF5 (see h5_direct_readers.hpp).
//
// A block is a run of whole chunks in storage order: the chunk grid has one
// chunk per index along the axes before the slab axis, and extent/chunk of
// them (rounded up) along it, so consecutive chunks are consecutive bytes of
// the data. Each chunk's raw bytes come from H5Dread_chunk (under h5_lock,
// for the two calls only); its filters are undone in reverse pipeline order,
// skipping those the chunk's filter mask says were not applied, and the
// last step writes into the block. Chunks of a block are decoded in
// parallel, in the calling thread's task arena.

#include <libdeflate.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <exception>
#include <memory>

#include "h5_block_reader.hpp"
#include "h5_direct_readers.hpp"
#include "h5_filters.hpp"
#include "h5_text.hpp"
#include "h5_types.hpp"
#include <fmt/format.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include "featpool/element.hpp"

namespace featpool::detail {
namespace {

// A task decodes at least this much, so that small chunks do not each make
// a task (and a turn at the lock) of their own.
constexpr std::uint64_t kTaskBytes = std::uint64_t{1} << 20;

// The filter mask has a bit per pipeline stage.
constexpr int kMaxStages = 32;

// HDF5 refuses to create a chunk of 4 GiB or more.
constexpr std::uint64_t kMaxChunkBytes = std::uint64_t{1} << 32;

// Deflate turns a byte into at most 1032 (a 258-byte match in two bits).
// Bytes said to inflate to more are corrupt, and making room for what they
// claim would allocate more than the file could hold.
constexpr std::uint64_t kMaxDeflateRatio = 1032;

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return a / b + (a % b != 0); }

// Grows to the largest size asked for; never initialized.
class scratch_buffer {
 public:
  std::byte* get(std::size_t size) {
    if (size > capacity_) {
      data_.reset();
      data_ = std::make_unique_for_overwrite<std::byte[]>(size);
      capacity_ = size;
    }
    return data_.get();
  }

 private:
  std::unique_ptr<std::byte[]> data_;
  std::size_t capacity_ = 0;
};

struct inflater_deleter {
  void operator()(libdeflate_decompressor* inflater) const noexcept {
    libdeflate_free_decompressor(inflater);
  }
};

// A thread's buffers: the raw chunk and two for the stages between. One set
// per thread for all readers (a thread decodes one chunk at a time), so the
// memory they take grows with the threads, not with the open readers.
struct chunk_scratch {
  scratch_buffer raw;
  std::array<scratch_buffer, 2> stages;
  std::unique_ptr<libdeflate_decompressor, inflater_deleter> inflater;
};

chunk_scratch& thread_scratch() {
  thread_local chunk_scratch scratch;
  return scratch;
}

// Chunk readers open in the process: a block needs chunks enough to keep
// every thread busy only while few tensors are read at once.
std::atomic<std::uint64_t> open_readers{0};

using chunk_offsets = std::array<hsize_t, kMaxRank>;

class chunk_slab_reader final : public block_reader {
 public:
  chunk_slab_reader(h5_handle file, h5_handle dataset, chunk_slabs slabs, const tensor_info& info,
                    h5_context where)
      : file_(std::move(file)),
        dataset_(std::move(dataset)),
        slabs_(std::move(slabs)),
        where_(std::move(where)),
        shape_(info.shape),
        item_size_(dtype_size(*info.type)) {
    std::size_t axis = slabs_.axis;
    std::uint64_t inner = item_size_;  // bytes of one index along the slab axis
    for (std::size_t a = axis + 1; a < shape_.size(); ++a) inner *= shape_[a];
    chunk_bytes_ = static_cast<std::size_t>(slabs_.chunk[axis] * inner);
    row_bytes_ = shape_[axis] * inner;
    along_ = ceil_div(shape_[axis], slabs_.chunk[axis]);
    last_bytes_ = row_bytes_ - (along_ - 1) * chunk_bytes_;
    chunk_count_ = along_;
    for (std::size_t a = 0; a < axis; ++a) chunk_count_ *= shape_[a];
    chunks_per_task_ = std::max<std::uint64_t>(1, kTaskBytes / chunk_bytes_);
    h5_lock lock;
    hsize_t file_bytes = 0;
    where_.check(H5Fget_filesize(file_.get(), &file_bytes), "cannot read the file's size");
    file_bytes_ = file_bytes;
    ++open_readers;
  }

  ~chunk_slab_reader() override { --open_readers; }
  chunk_slab_reader(const chunk_slab_reader&) = delete;
  chunk_slab_reader& operator=(const chunk_slab_reader&) = delete;

  std::span<const std::byte> next() override {
    if (next_chunk_ == chunk_count_) return {};
    std::uint64_t first = next_chunk_;
    std::uint64_t last = std::min(chunk_count_, first + chunks_per_block());
    std::uint64_t start = position(first);
    auto size = static_cast<std::size_t>(position(last - 1) + valid_bytes(last - 1) - start);
    std::byte* block = block_.get(size);

    // Every chunk is decoded even after one failed, so that the error is
    // always about the first bad chunk.
    std::vector<std::exception_ptr> failures(static_cast<std::size_t>(last - first));
    tbb::this_task_arena::isolate([&] {
      tbb::parallel_for(tbb::blocked_range<std::uint64_t>(first, last, chunks_per_task_),
                        [&](const tbb::blocked_range<std::uint64_t>& range) {
                          chunk_scratch& scratch = thread_scratch();
                          for (std::uint64_t n = range.begin(); n != range.end(); ++n) {
                            try {
                              std::span<std::byte> out(block + (position(n) - start),
                                                       static_cast<std::size_t>(valid_bytes(n)));
                              decode_chunk(n, out, scratch);
                            } catch (...) {
                              failures[n - first] = std::current_exception();
                            }
                          }
                        });
    });
    for (const auto& failure : failures) {
      if (failure) std::rethrow_exception(failure);
    }
    next_chunk_ = last;
    return {block, size};
  }

 private:
  // About kBlockBytes, or more: two chunks for each thread of the arena,
  // shared among the open readers; at most
  // kMaxChunkedBlockBytes unless one chunk is larger.
  std::uint64_t chunks_per_block() const {
    auto threads = static_cast<std::uint64_t>(std::max(1, tbb::this_task_arena::max_concurrency()));
    std::uint64_t readers = std::max<std::uint64_t>(1, open_readers.load());
    std::uint64_t chunks =
        std::max(ceil_div(kBlockBytes, chunk_bytes_), ceil_div(2 * threads, readers));
    return std::min(chunks, std::max<std::uint64_t>(1, kMaxChunkedBlockBytes / chunk_bytes_));
  }

  // Byte offset of chunk n's first element in the data.
  std::uint64_t position(std::uint64_t n) const {
    return n / along_ * row_bytes_ + n % along_ * chunk_bytes_;
  }

  // Bytes of chunk n inside the dataset: all of it but at the slab axis' end.
  std::uint64_t valid_bytes(std::uint64_t n) const {
    return n % along_ == along_ - 1 ? last_bytes_ : chunk_bytes_;
  }

  // The chunk's first element, as HDF5 names chunks.
  chunk_offsets offsets_of(std::uint64_t n) const {
    chunk_offsets offsets{};
    std::size_t axis = slabs_.axis;
    offsets[axis] = n % along_ * slabs_.chunk[axis];
    n /= along_;
    for (std::size_t a = axis; a-- > 0;) {
      offsets[a] = n % shape_[a];
      n /= shape_[a];
    }
    return offsets;
  }

  std::string chunk_name(const chunk_offsets& offsets) const {
    return python_shape({offsets.begin(), offsets.begin() + shape_.size()});
  }

  [[noreturn]] void corrupt(const chunk_offsets& offsets, std::string_view what) const {
    where_.fail(fmt::format("corrupt chunk {}: {}", chunk_name(offsets), what));
  }

  // The chunk's size in the file, 0 for a chunk never written. Under the lock.
  //
  // HDF5 1.10 has no call that answers both cheaply: H5Dget_chunk_info_by_coord
  // walks the whole chunk index (quadratic over a dataset), and
  // H5Dget_chunk_storage_size, a direct lookup, fails for a chunk never
  // written ("chunk storage is not allocated", the innermost error). A failure
  // with any other reason is asked again of the slow call, so that a chunk
  // never written is never taken for an error, only a true failure fails.
  hsize_t stored_size(const chunk_offsets& offsets) const {
    hsize_t stored = 0;
    if (H5Dget_chunk_storage_size(dataset_.get(), offsets.data(), &stored) >= 0) return stored;
    std::string reason = take_innermost_h5_error();
    if (reason == "chunk storage is not allocated") return 0;
    unsigned mask = 0;
    haddr_t address = HADDR_UNDEF;
    if (H5Dget_chunk_info_by_coord(dataset_.get(), offsets.data(), &mask, &address, &stored) >= 0) {
      return address == HADDR_UNDEF ? 0 : stored;
    }
    take_innermost_h5_error();
    where_.fail(fmt::format("cannot read chunk {}: {}", chunk_name(offsets),
                            reason.empty() ? "unknown reason" : reason));
  }

  void decode_chunk(std::uint64_t n, std::span<std::byte> out, chunk_scratch& scratch) const {
    chunk_offsets offsets = offsets_of(n);
    hsize_t stored = 0;
    std::uint32_t mask = 0;
    const std::byte* bytes = nullptr;
    bool in_out = false;  // the bytes are already in `out`
    {
      h5_lock lock;
      stored = stored_size(offsets);
      // The size comes from the chunk index, read from the file like the
      // chunk: no chunk takes more bytes than the file has.
      if (stored > file_bytes_) {
        corrupt(offsets, fmt::format("the chunk index gives it {} bytes, more than the file's {}",
                                     stored, file_bytes_));
      }
      if (stored > 0) {
        // Unfiltered and whole: straight into the block.
        in_out = slabs_.pipeline.empty() && stored == chunk_bytes_ && out.size() == chunk_bytes_;
        std::byte* raw = in_out ? out.data() : scratch.raw.get(static_cast<std::size_t>(stored));
        if (H5Dread_chunk(dataset_.get(), H5P_DEFAULT, offsets.data(), &mask, raw) < 0) {
          where_.fail(fmt::format("cannot read chunk {}: {}", chunk_name(offsets),
                                  take_innermost_h5_error()));
        }
        bytes = raw;
      }
    }
    if (stored == 0) {  // never written: the fill value
      for (std::size_t at = 0; at < out.size(); at += item_size_) {
        std::memcpy(out.data() + at, slabs_.fill.data(), item_size_);
      }
      return;
    }

    auto size = static_cast<std::size_t>(stored);
    if (!in_out) {
      const auto& pipeline = slabs_.pipeline;
      auto applied = [&](std::size_t stage) { return (mask >> stage & 1) == 0; };
      // Fletcher32 checksums still to strip below a stage, to know how many
      // bytes its output must have.
      std::size_t checksums = 0;
      for (std::size_t stage = 0; stage < pipeline.size(); ++stage) {
        if (applied(stage) && pipeline[stage].id == H5Z_FILTER_FLETCHER32) ++checksums;
      }
      std::size_t first_applied = pipeline.size();
      for (std::size_t stage = pipeline.size(); stage-- > 0;) {
        if (applied(stage)) first_applied = stage;
      }
      int current = -1;  // which stage buffer holds the bytes, -1 for none
      auto next_buffer = [&](std::size_t need) {
        current = current == 0 ? 1 : 0;
        return scratch.stages[static_cast<std::size_t>(current)].get(need);
      };

      for (std::size_t stage = pipeline.size(); stage-- > 0;) {
        if (!applied(stage)) continue;
        bool last_step = stage == first_applied;
        switch (pipeline[stage].id) {
          case H5Z_FILTER_FLETCHER32:
            if (!fletcher32_matches({bytes, size})) {
              where_.fail(fmt::format("checksum mismatch in chunk {}", chunk_name(offsets)));
            }
            size -= 4;
            --checksums;
            break;
          case H5Z_FILTER_DEFLATE: {
            std::size_t expected = chunk_bytes_ + 4 * checksums;
            if (expected / kMaxDeflateRatio > size) {
              corrupt(offsets, fmt::format("{} deflated bytes cannot inflate to its {} bytes", size,
                                           expected));
            }
            bool direct = last_step && expected == out.size();
            std::byte* into = direct ? out.data() : next_buffer(expected);
            inflate(bytes, size, into, expected, offsets, scratch);
            bytes = into;
            size = expected;
            in_out = direct;
            break;
          }
          case H5Z_FILTER_SHUFFLE: {
            std::size_t element = pipeline[stage].values[0];
            // Into the block only when whole elements land there.
            bool direct = last_step && size == chunk_bytes_ && element == item_size_;
            std::span<std::byte> into = direct ? out : std::span(next_buffer(size), size);
            unshuffle({bytes, size}, into, element);
            bytes = into.data();
            in_out = direct;
            break;
          }
          default:
            break;  // not chosen by find_chunk_slabs
        }
      }
      if (size != chunk_bytes_) {
        corrupt(offsets, fmt::format("{} bytes where the chunk has {}", size, chunk_bytes_));
      }
      if (!in_out) std::memcpy(out.data(), bytes, out.size());
    }
    if (slabs_.swap_bytes) swap_byte_order(out, item_size_);
  }

  void inflate(const std::byte* in, std::size_t in_size, std::byte* out, std::size_t expected,
               const chunk_offsets& offsets, chunk_scratch& scratch) const {
    if (!scratch.inflater) {
      scratch.inflater.reset(libdeflate_alloc_decompressor());
      if (!scratch.inflater) where_.fail("out of memory for a decompressor");
    }
    switch (
        libdeflate_zlib_decompress(scratch.inflater.get(), in, in_size, out, expected, nullptr)) {
      case LIBDEFLATE_SUCCESS:
        return;
      case LIBDEFLATE_SHORT_OUTPUT:
        corrupt(offsets, fmt::format("inflates to fewer than its {} bytes", expected));
      case LIBDEFLATE_INSUFFICIENT_SPACE:
        corrupt(offsets, fmt::format("inflates to more than its {} bytes", expected));
      default:
        corrupt(offsets, "invalid deflate data");
    }
  }

  // Declared so that the dataset closes before the file.
  h5_handle file_;
  h5_handle dataset_;
  chunk_slabs slabs_;
  h5_context where_;
  std::vector<std::uint64_t> shape_;
  std::size_t item_size_;
  std::size_t chunk_bytes_ = 0;   // a whole chunk, decoded
  std::uint64_t row_bytes_ = 0;   // the whole slab axis
  std::uint64_t along_ = 0;       // chunks along the slab axis
  std::uint64_t last_bytes_ = 0;  // of the last chunk along it, inside the dataset
  std::uint64_t chunk_count_ = 0;
  std::uint64_t chunks_per_task_ = 1;
  std::uint64_t file_bytes_ = 0;  // the file's size when the reader was made
  std::uint64_t next_chunk_ = 0;
  scratch_buffer block_;
};

bool decodable(H5Z_filter_t id) {
  return id == H5Z_FILTER_DEFLATE || id == H5Z_FILTER_SHUFFLE || id == H5Z_FILTER_FLETCHER32;
}

}  // namespace

std::optional<chunk_slabs> find_chunk_slabs(hid_t dcpl, hid_t file_type, hid_t memory_type,
                                            const tensor_info& info, const h5_context& where) {
  const auto& shape = info.shape;
  if (!info.numeric() || info.element_count() == 0 || shape.empty()) return std::nullopt;
  if (H5Pget_layout(dcpl) != H5D_CHUNKED) return std::nullopt;
  if (!info.chunks || info.chunks->size() != shape.size()) return std::nullopt;
  const auto& chunk = *info.chunks;
  if (std::find(chunk.begin(), chunk.end(), 0) != chunk.end()) return std::nullopt;

  // Chunk dims of 1, then any, then the whole dataset's.
  chunk_slabs slabs;
  slabs.axis = shape.size() - 1;
  for (std::size_t a = 0; a < shape.size(); ++a) {
    if (chunk[a] != 1) {
      slabs.axis = a;
      break;
    }
  }
  for (std::size_t a = slabs.axis + 1; a < shape.size(); ++a) {
    if (chunk[a] != shape[a]) return std::nullopt;
  }
  // A corrupt file may claim a chunk HDF5 would never write: the library
  // refuses it.
  std::uint64_t chunk_bytes = dtype_size(*info.type);
  for (auto extent : chunk) {
    if (__builtin_mul_overflow(chunk_bytes, extent, &chunk_bytes)) return std::nullopt;
  }
  if (chunk_bytes >= kMaxChunkBytes) return std::nullopt;
  slabs.chunk = chunk;

  auto swapped = stored_swapped(file_type, memory_type, where);
  if (!swapped) return std::nullopt;
  slabs.swap_bytes = *swapped;

  int stages = where.check(H5Pget_nfilters(dcpl), "cannot read the filter pipeline");
  if (stages > kMaxStages) return std::nullopt;
  for (int i = 0; i < stages; ++i) {
    unsigned flags = 0;
    std::vector<unsigned> values(8);
    std::size_t count = values.size();
    H5Z_filter_t id = where.check(H5Pget_filter2(dcpl, static_cast<unsigned>(i), &flags, &count,
                                                 values.data(), 0, nullptr, nullptr),
                                  "cannot read the filter pipeline");
    if (!decodable(id)) return std::nullopt;
    values.resize(std::min(count, values.size()));
    if (id == H5Z_FILTER_SHUFFLE && (values.empty() || values[0] == 0)) return std::nullopt;
    slabs.pipeline.push_back({id, std::move(values)});
  }

  // What the library reads for a chunk never written: the fill value when
  // one is defined and written, else (HDF5 leaves the buffer as it was)
  // zeros.
  std::size_t item_size = dtype_size(*info.type);
  slabs.fill.assign(item_size, std::byte{0});
  H5D_fill_value_t defined = H5D_FILL_VALUE_ERROR;
  H5D_fill_time_t time = H5D_FILL_TIME_ERROR;
  where.check(H5Pfill_value_defined(dcpl, &defined), "cannot read the fill value");
  where.check(H5Pget_fill_time(dcpl, &time), "cannot read the fill value");
  if (defined != H5D_FILL_VALUE_UNDEFINED && time != H5D_FILL_TIME_NEVER) {
    where.check(H5Pget_fill_value(dcpl, memory_type, slabs.fill.data()),
                "cannot read the fill value");
  }
  return slabs;
}

std::unique_ptr<block_reader> make_chunk_slab_reader(h5_handle file, h5_handle dataset,
                                                     chunk_slabs slabs, const tensor_info& info,
                                                     h5_context where) {
  return std::make_unique<chunk_slab_reader>(std::move(file), std::move(dataset), std::move(slabs),
                                             info, std::move(where));
}

}  // namespace featpool::detail
