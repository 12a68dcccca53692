#include "storage_view_reader.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "featpool/element.hpp"
#include "featpool/error.hpp"

namespace featpool::detail {
namespace {

std::uint64_t element_count(const storage_view& view) {
  std::uint64_t count = 1;
  for (auto extent : view.shape) count *= extent;  // checked by the caller
  return count;
}

// Reads exactly buffer.size() bytes, which the storage is known to hold.
void read_exactly(byte_stream& stream, std::span<std::byte> buffer, const std::string& file,
                  const std::string& tensor) {
  if (stream.read(buffer) != buffer.size()) {
    throw error(file, tensor, "truncated storage: it ends before the tensor's last element");
  }
}

void skip(byte_stream& stream, std::uint64_t bytes, const std::string& file,
          const std::string& tensor) {
  std::array<std::byte, 65536> scratch;
  while (bytes > 0) {
    auto part = static_cast<std::size_t>(std::min<std::uint64_t>(bytes, scratch.size()));
    read_exactly(stream, std::span(scratch).first(part), file, tensor);
    bytes -= part;
  }
}

class view_reader_base : public block_reader {
 public:
  view_reader_base(storage_opener open, storage_view view, std::string file, std::string tensor)
      : open_(std::move(open)),
        view_(std::move(view)),
        file_(std::move(file)),
        tensor_(std::move(tensor)),
        remaining_(element_count(view_)) {
    auto per_block = std::max<std::uint64_t>(1, kBlockBytes / view_.item_size);
    block_.resize(static_cast<std::size_t>(std::min(per_block, remaining_) * view_.item_size));
  }

 protected:
  std::span<const std::byte> finish_block(std::size_t elements) {
    std::span block(block_.data(), elements * view_.item_size);
    if (view_.swap_bytes) swap_byte_order(block, view_.item_size);
    remaining_ -= elements;
    return block;
  }

  storage_opener open_;
  storage_view view_;
  std::string file_;
  std::string tensor_;
  std::uint64_t remaining_;  // elements not yet handed out
  std::vector<std::byte> block_;
};

// A contiguous view: skip to its offset, then read straight through.
class contiguous_reader final : public view_reader_base {
 public:
  using view_reader_base::view_reader_base;

  std::span<const std::byte> next() override {
    if (remaining_ == 0) return {};
    if (!stream_) {
      stream_ = open_();
      skip(*stream_, view_.offset * view_.item_size, file_, tensor_);
    }
    auto elements = static_cast<std::size_t>(
        std::min<std::uint64_t>(remaining_, block_.size() / view_.item_size));
    read_exactly(*stream_, std::span(block_).first(elements * view_.item_size), file_, tensor_);
    return finish_block(elements);
  }

 private:
  std::unique_ptr<byte_stream> stream_;
};

// Any other view, a block at a time: the block's storage addresses are
// listed in C order of the view; the part of the storage they span is read
// whole when it takes at most 16 MiB, otherwise the addresses are sorted and
// gathered in one forward pass over that part, read in 1 MiB pieces. The stream is read
// again from the start only when a block begins behind where the previous
// one ended, so a view that moves forward (slices, permutes within a sample)
// reads its storage about once; a transpose reads it once per block.
class gathering_reader final : public view_reader_base {
 public:
  gathering_reader(storage_opener open, storage_view view, std::string file, std::string tensor)
      : view_reader_base(std::move(open), std::move(view), std::move(file), std::move(tensor)),
        index_(view_.shape.size(), 0),
        address_(view_.offset) {
    auto per_block = std::min<std::uint64_t>(kMaxGatherElements, block_.size() / view_.item_size);
    block_.resize(static_cast<std::size_t>(per_block * view_.item_size));
  }

  std::span<const std::byte> next() override {
    if (remaining_ == 0) return {};
    const std::size_t item = view_.item_size;
    auto elements =
        static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, block_.size() / item));
    addresses_.resize(elements);
    bool ascending = true;
    std::uint64_t lowest = address_, highest = address_;
    for (std::size_t i = 0; i < elements; ++i) {
      addresses_[i] = address_;
      ascending = ascending && (i == 0 || addresses_[i - 1] <= address_);
      lowest = std::min(lowest, address_);
      highest = std::max(highest, address_);
      advance();
    }
    if ((highest - lowest) < kSpanBytes / item) {
      // The block's part of the storage fits in memory (a permute within
      // samples, a slice): read it whole and pick the elements, unsorted.
      load(lowest, highest - lowest + 1);
      for (std::size_t i = 0; i < elements; ++i) copy_element(i);
      return finish_block(elements);
    }
    order_.resize(elements);
    for (std::size_t i = 0; i < elements; ++i) order_[i] = static_cast<std::uint32_t>(i);
    if (!ascending) {
      std::sort(order_.begin(), order_.end(),
                [&](std::uint32_t a, std::uint32_t b) { return addresses_[a] < addresses_[b]; });
    }
    const std::uint64_t piece_elements = std::max<std::size_t>(1, kPieceBytes / item);
    for (auto i : order_) {
      std::uint64_t address = addresses_[i];
      if (address < piece_first_ || address >= piece_first_ + piece_count_) {
        load(address, std::min(piece_elements, view_end() - address));
      }
      copy_element(i);
    }
    return finish_block(elements);
  }

 private:
  // Elements a block gathers at most: its addresses and their order take
  // 12 bytes an element besides the block itself.
  static constexpr std::uint64_t kMaxGatherElements = std::uint64_t{1} << 20;
  // Bytes of storage read at once when a block's addresses are sorted.
  static constexpr std::size_t kPieceBytes = std::size_t{1} << 20;
  // A block whose addresses span at most this many bytes of the storage
  // reads that span whole instead.
  static constexpr std::size_t kSpanBytes = std::size_t{16} << 20;

  void copy_element(std::size_t i) {
    const std::size_t item = view_.item_size;
    std::memcpy(block_.data() + i * item,
                piece_.data() + static_cast<std::size_t>(addresses_[i] - piece_first_) * item,
                item);
  }

  // The next element in C order of the view's shape. The address may wrap
  // around 64 bits in between; it is right again once an axis rolls over.
  void advance() {
    for (std::size_t d = view_.shape.size(); d-- > 0;) {
      address_ += view_.strides[d];
      if (++index_[d] < view_.shape[d]) return;
      address_ -= view_.strides[d] * view_.shape[d];
      index_[d] = 0;
    }
  }

  // Reads `count` elements of the storage from element `first` on into the
  // piece, reading it again from its start when `first` lies behind what
  // was read.
  void load(std::uint64_t first, std::uint64_t count) {
    if (!stream_ || first < stream_position_) {
      stream_ = open_();
      stream_position_ = 0;
    }
    const std::size_t item = view_.item_size;
    skip(*stream_, (first - stream_position_) * item, file_, tensor_);
    piece_.resize(static_cast<std::size_t>(count * item));
    read_exactly(*stream_, piece_, file_, tensor_);
    piece_first_ = first;
    piece_count_ = count;
    stream_position_ = first + count;
  }

  // One past the last storage element the view uses.
  std::uint64_t view_end() const {
    std::uint64_t end = view_.offset + 1;
    for (std::size_t d = 0; d < view_.shape.size(); ++d) {
      if (view_.shape[d] > 0) end += (view_.shape[d] - 1) * view_.strides[d];
    }
    return end;
  }

  std::vector<std::uint64_t> index_;      // of the next element, per axis
  std::uint64_t address_;                 // its element in the storage
  std::vector<std::uint64_t> addresses_;  // of the block's elements
  std::vector<std::uint32_t> order_;      // the block's elements by address
  std::unique_ptr<byte_stream> stream_;
  std::uint64_t stream_position_ = 0;  // in elements
  std::vector<std::byte> piece_;
  std::uint64_t piece_first_ = 0;
  std::uint64_t piece_count_ = 0;
};

}  // namespace

bool is_contiguous(const storage_view& view) {
  std::uint64_t expected = 1;
  for (std::size_t d = view.shape.size(); d-- > 0;) {
    // An axis of length 1 is never stepped along, whatever its stride.
    if (view.shape[d] != 1 && view.strides[d] != expected) return false;
    expected *= view.shape[d];
  }
  return true;
}

std::unique_ptr<block_reader> make_storage_view_reader(storage_opener open, storage_view view,
                                                       std::string file, std::string tensor) {
  if (is_contiguous(view) || element_count(view) == 0) {
    return std::make_unique<contiguous_reader>(std::move(open), std::move(view), std::move(file),
                                               std::move(tensor));
  }
  return std::make_unique<gathering_reader>(std::move(open), std::move(view), std::move(file),
                                            std::move(tensor));
}

}  // namespace featpool::detail
