// Contiguous, unfiltered datasets: their elements are one run of bytes in
// the file, read with pread. The descriptor is a duplicate of the one HDF5
// opened, so it is the same file whatever happens to the path meanwhile,
// and it stays open (owned by the reader) after HDF5 closes the file.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "h5_block_reader.hpp"
#include "h5_direct_readers.hpp"
#include "h5_filters.hpp"
#include "h5_types.hpp"
#include <fmt/format.h>

#include "featpool/byte_stream.hpp"
#include "featpool/element.hpp"

namespace featpool::detail {

unique_fd& unique_fd::operator=(unique_fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

unique_fd::~unique_fd() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

// Hands out the same blocks as the library's reader (plan_blocks): a range
// along the plan's axis, every later axis whole, which in C order is a run
// of consecutive bytes.
class contiguous_reader final : public block_reader {
 public:
  contiguous_reader(contiguous_storage storage, const tensor_info& info, h5_context where)
      : storage_(std::move(storage)),
        where_(std::move(where)),
        item_size_(dtype_size(*info.type)),
        size_(info.nbytes) {
    block_plan plan = plan_blocks(info);
    step_ = plan.step;
    extent_ = info.shape.empty() ? 1 : info.shape[plan.axis];
    row_bytes_ = item_size_;
    for (std::size_t axis = plan.axis + 1; axis < info.shape.size(); ++axis) {
      row_bytes_ *= info.shape[axis];
    }
  }

  std::span<const std::byte> next() override {
    if (position_ == size_) return {};
    std::uint64_t rows = std::min(step_, extent_ - start_);
    auto wanted = static_cast<std::size_t>(rows * row_bytes_);
    if (wanted > capacity_) {
      buffer_.reset();
      buffer_ = std::make_unique_for_overwrite<std::byte[]>(wanted);
      capacity_ = wanted;
    }
    read_at(storage_.offset + position_, buffer_.get(), wanted);
    std::span<std::byte> block(buffer_.get(), wanted);
    if (storage_.swap_bytes) swap_byte_order(block, item_size_);
    position_ += wanted;
    start_ += rows;
    if (start_ == extent_) start_ = 0;
    return block;
  }

  std::optional<raw_extent> raw() const override {
    return raw_extent{storage_.fd.get(), storage_.offset, storage_.swap_bytes};
  }

 private:
  void read_at(std::uint64_t offset, std::byte* out, std::size_t size) const {
    std::size_t got = 0;
    try {
      got = pread_fully(storage_.fd.get(), std::span(out, size), offset);
    } catch (const std::system_error& failure) {
      where_.fail("cannot read the data: " + failure.code().message());
    }
    if (got < size) where_.fail("truncated file: the data ends early");
  }

  contiguous_storage storage_;
  h5_context where_;
  std::size_t item_size_;
  std::uint64_t size_;           // bytes of all elements
  std::uint64_t step_ = 1;       // a block's range along the plan's axis
  std::uint64_t extent_ = 1;     // the plan's axis' extent
  std::uint64_t row_bytes_ = 0;  // bytes of one index along it
  std::uint64_t start_ = 0;      // where the next block starts along it
  std::uint64_t position_ = 0;   // bytes handed out so far
  std::unique_ptr<std::byte[]> buffer_;
  std::size_t capacity_ = 0;
};

}  // namespace

std::optional<contiguous_storage> find_contiguous_storage(hid_t file, hid_t dataset, hid_t dcpl,
                                                          hid_t file_type, hid_t memory_type,
                                                          const tensor_info& info,
                                                          const h5_context& where) {
  if (!info.numeric() || info.element_count() == 0) return std::nullopt;
  if (H5Pget_layout(dcpl) != H5D_CONTIGUOUS) return std::nullopt;
  if (where.check(H5Pget_nfilters(dcpl), "cannot read the filter pipeline") != 0) {
    return std::nullopt;
  }
  if (where.check(H5Pget_external_count(dcpl), "cannot read the external storage") != 0) {
    return std::nullopt;
  }
  auto swapped = stored_swapped(file_type, memory_type, where);
  if (!swapped) return std::nullopt;

  // Undefined until the data is written (the library reads fill values).
  haddr_t address = H5Dget_offset(dataset);
  if (address == HADDR_UNDEF) {
    take_innermost_h5_error();
    return std::nullopt;
  }
  if (H5Dget_storage_size(dataset) < info.nbytes) {
    take_innermost_h5_error();
    return std::nullopt;
  }

  // Only the default driver keeps the file as one descriptor of its own.
  auto fapl = where.own(H5Fget_access_plist(file), "cannot read the file access properties");
  if (H5Pget_driver(fapl.get()) != H5FD_SEC2) {
    take_innermost_h5_error();
    return std::nullopt;
  }
  void* handle = nullptr;
  where.check(H5Fget_vfd_handle(file, fapl.get(), &handle), "cannot read the file's descriptor");
  if (handle == nullptr) return std::nullopt;
  int copy = ::fcntl(*static_cast<const int*>(handle), F_DUPFD_CLOEXEC, 0);
  if (copy < 0) where.fail(fmt::format("cannot duplicate a descriptor: {}", std::strerror(errno)));
  unique_fd fd(copy);

  // A truncated file is left to the library, which says so.
  struct stat status {};
  if (::fstat(fd.get(), &status) != 0 || !S_ISREG(status.st_mode)) return std::nullopt;
  std::uint64_t end = 0;
  if (__builtin_add_overflow(address, info.nbytes, &end) ||
      end > static_cast<std::uint64_t>(status.st_size)) {
    return std::nullopt;
  }
  return contiguous_storage{std::move(fd), address, *swapped};
}

std::unique_ptr<block_reader> make_contiguous_reader(contiguous_storage storage,
                                                     const tensor_info& info, h5_context where) {
  return std::make_unique<contiguous_reader>(std::move(storage), info, std::move(where));
}

}  // namespace featpool::detail
