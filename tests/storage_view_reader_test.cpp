#include "storage_view_reader.hpp"

#include <cstring>
#include <numeric>
#include <vector>

#include <doctest/doctest.h>

#include "featpool/error.hpp"

namespace featpool::detail {
namespace {

// A storage of `count` int32 elements 0, 1, 2, ..., opened as a stream.
struct counting_storage {
  explicit counting_storage(std::size_t count) : values(count) {
    std::iota(values.begin(), values.end(), 0);
  }
  storage_opener opener() {
    return [this] {
      ++opened;
      return std::unique_ptr<byte_stream>(
          std::make_unique<memory_stream>(std::as_bytes(std::span<const std::int32_t>(values))));
    };
  }
  std::vector<std::int32_t> values;
  int opened = 0;
};

std::vector<std::int32_t> read_all(block_reader& reader) {
  std::vector<std::int32_t> out;
  for (auto block = reader.next(); !block.empty(); block = reader.next()) {
    std::vector<std::int32_t> part(block.size() / 4);
    std::memcpy(part.data(), block.data(), block.size());
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

// The view's elements in C order, computed the plain way.
std::vector<std::int32_t> expected(const storage_view& view) {
  std::vector<std::int32_t> out;
  std::vector<std::uint64_t> index(view.shape.size(), 0);
  std::uint64_t count = 1;
  for (auto n : view.shape) count *= n;
  for (std::uint64_t k = 0; k < count; ++k) {
    std::uint64_t address = view.offset;
    for (std::size_t d = 0; d < index.size(); ++d) address += index[d] * view.strides[d];
    out.push_back(static_cast<std::int32_t>(address));
    for (std::size_t d = index.size(); d-- > 0;) {
      if (++index[d] < view.shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

TEST_CASE("storage_view_reader: views in C order of their shape") {
  struct row {
    const char* what;
    storage_view view;
    bool contiguous;
  };
  const row rows[] = {
      {"contiguous", {0, {2, 3, 4}, {12, 4, 1}, 4}, true},
      {"contiguous from an offset", {6, {3, 4}, {4, 1}, 4}, true},
      {"axes of length 1 with any stride", {2, {1, 3, 1}, {99, 1, 7}, 4}, true},
      {"a permute, NCHW as NHWC", {0, {2, 4, 5, 3}, {60, 5, 1, 20}, 4}, false},
      {"a transpose", {0, {4, 3}, {1, 4}, 4}, false},
      {"a slice of an inner axis", {1, {2, 2, 4}, {12, 4, 1}, 4}, false},
      {"every other element", {0, {5}, {2}, 4}, false},
      {"a broadcast stride of 0", {5, {3, 4}, {0, 1}, 4}, false},
      {"no elements", {0, {2, 0, 3}, {0, 3, 1}, 4}, true},
  };
  for (const auto& r : rows) {
    CAPTURE(r.what);
    CHECK(is_contiguous(r.view) == r.contiguous);
    counting_storage storage(120);
    auto reader = make_storage_view_reader(storage.opener(), r.view, "f.pt", "t");
    CHECK(read_all(*reader) == expected(r.view));
  }
}

TEST_CASE("storage_view_reader: a transpose over many blocks, read once per block") {
  // 1500 x 1500 int32 transposed: 2.25 million elements, three gathering
  // blocks, each spanning 9 MB of the storage, read whole.
  counting_storage storage(1500 * 1500);
  storage_view view{0, {1500, 1500}, {1, 1500}, 4};
  auto reader = make_storage_view_reader(storage.opener(), view, "f.pt", "t");
  CHECK(read_all(*reader) == expected(view));
  CHECK(storage.opened == 3);
}

TEST_CASE("storage_view_reader: blocks spanning more than 16 MiB are gathered in order") {
  // 2100 x 2100 int32 transposed: each block spans 17.6 MB, so its addresses
  // are sorted and taken in 1 MiB pieces.
  counting_storage storage(2100 * 2100);
  storage_view view{0, {2100, 2100}, {1, 2100}, 4};
  auto reader = make_storage_view_reader(storage.opener(), view, "f.pt", "t");
  CHECK(read_all(*reader) == expected(view));
  CHECK(storage.opened == 5);
}

TEST_CASE("storage_view_reader: a permute that moves forward reads its storage once") {
  counting_storage storage(4 * 64 * 32 * 32);
  storage_view view{0, {4, 32, 32, 64}, {65536, 32, 1, 1024}, 4};
  auto reader = make_storage_view_reader(storage.opener(), view, "f.pt", "t");
  CHECK(read_all(*reader) == expected(view));
  CHECK(storage.opened == 1);
}

TEST_CASE("storage_view_reader: a storage shorter than promised is an error") {
  counting_storage storage(10);
  storage_view view{0, {3, 4}, {1, 3}, 4};
  auto reader = make_storage_view_reader(storage.opener(), view, "f.pt", "t");
  CHECK_THROWS_WITH_AS(
      reader->next(), "f.pt:t: truncated storage: it ends before the tensor's last element", error);
}

}  // namespace
}  // namespace featpool::detail
