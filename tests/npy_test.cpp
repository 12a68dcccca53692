#include "featpool/npy.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "test_files.hpp"
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "featpool/element.hpp"
#include "featpool/error.hpp"

namespace featpool {
namespace {

using testing::npy_bytes;

npy_header parse(const std::string& bytes) {
  memory_stream in(std::as_bytes(std::span(bytes)));
  return read_npy_header(in, "x.npy", "");
}

std::vector<std::byte> read_all(block_reader& reader, std::size_t* blocks = nullptr) {
  std::vector<std::byte> out;
  for (auto block = reader.next(); !block.empty(); block = reader.next()) {
    out.insert(out.end(), block.begin(), block.end());
    if (blocks) ++*blocks;
  }
  return out;
}

TEST_CASE("npy: the header numpy writes is parsed in every version") {
  for (int version : {1, 2, 3}) {
    auto header = parse(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                                  std::string(24, '\0'), version));
    CHECK(header.major_version == version);
    CHECK(header.descr == "<f4");
    CHECK_FALSE(header.fortran_order);
    CHECK(header.shape == std::vector<std::uint64_t>{2, 3});
  }
}

TEST_CASE("npy: scalars, one-axis tuples, Python 2 longs and double quotes") {
  CHECK(parse(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': ()}")).shape.empty());
  CHECK(parse(npy_bytes("{'descr': '<f8', 'fortran_order': True, 'shape': (5,)}")).shape ==
        std::vector<std::uint64_t>{5});
  CHECK(parse(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3L, 4L)}")).shape ==
        std::vector<std::uint64_t>{3, 4});
  CHECK(parse(npy_bytes("{\"descr\": \"|u1\", \"fortran_order\": False, \"shape\": (0,)}")).descr ==
        "|u1");
}

TEST_CASE("npy: dtypes are described with numpy's names and byte orders") {
  struct row {
    const char* descr;
    const char* name;
    bool numeric;
    byte_order order;
    std::uint64_t item_size;
  };
  const row rows[] = {
      {"|b1", "bool", true, byte_order::none, 1},
      {"|i1", "int8", true, byte_order::none, 1},
      {"<i2", "int16", true, byte_order::little, 2},
      {">i4", "int32", true, byte_order::big, 4},
      {"<i8", "int64", true, byte_order::little, 8},
      {"|u1", "uint8", true, byte_order::none, 1},
      {"<u1", "uint8", true, byte_order::none, 1},
      {">u2", "uint16", true, byte_order::big, 2},
      {"<u4", "uint32", true, byte_order::little, 4},
      {"<u8", "uint64", true, byte_order::little, 8},
      {"<f2", "float16", true, byte_order::little, 2},
      {">f4", "float32", true, byte_order::big, 4},
      {"<f8", "float64", true, byte_order::little, 8},
      {"<c8", "complex64", false, byte_order::little, 8},
      {">c16", "complex128", false, byte_order::big, 16},
      {"|S8", "|S8", false, byte_order::none, 8},
      {"<U4", "<U4", false, byte_order::little, 16},
      {"|O", "object", false, byte_order::none, 8},
      {"<M8[ns]", "<M8[ns]", false, byte_order::little, 8},
  };
  for (const auto& r : rows) {
    CAPTURE(r.descr);
    auto bytes =
        npy_bytes(fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': (3,)}}", r.descr),
                  std::string(3 * r.item_size, '\0'));
    memory_stream in(std::as_bytes(std::span(bytes)));
    auto header = read_npy_header(in, "x.npy", "");
    auto info = describe_npy(header, "x.npy", "x", file_format::npy, bytes.size());
    CHECK(info.dtype_string == r.name);
    CHECK(info.numeric() == r.numeric);
    CHECK(info.stored_byte_order == r.order);
    CHECK(info.nbytes == 3 * r.item_size);
  }
}

TEST_CASE("npy: a structured dtype is listed by its description") {
  auto bytes = npy_bytes(
      "{'descr': [('a', '<i4'), ('b', '<f8', (2,))], 'fortran_order': False, 'shape': (2,)}",
      std::string(40, '\0'));
  memory_stream in(std::as_bytes(std::span(bytes)));
  auto info =
      describe_npy(read_npy_header(in, "x.npy", ""), "x.npy", "x", file_format::npy, bytes.size());
  CHECK(info.dtype_string == "[('a', '<i4'), ('b', '<f8', (2,))]");
  CHECK_FALSE(info.numeric());
  CHECK(info.nbytes == 40);
  CHECK_THROWS_WITH_AS(
      make_npy_reader(std::make_unique<memory_stream>(std::span<std::byte>{}), info),
      "x.npy:x: dtype [('a', '<i4'), ('b', '<f8', (2,))] is not numeric: its "
      "data cannot be read",
      error);
}

// Each row: a malformed NPY and the whole message featpool gives for it.
TEST_CASE("npy: malformed headers are refused with one clear line") {
  struct row {
    std::string bytes;
    const char* message;
  };
  const std::string f4 = "'descr': '<f4', 'fortran_order': False";
  std::string thirty_three_axes;
  for (int i = 0; i < 33; ++i) thirty_three_axes += "1, ";
  const row rows[] = {
      // Nothing at all.
      {"", "x.npy: empty file"},
      // Another file type.
      {"PK\x03\x04 not npy", "x.npy: not an NPY file (bad magic)"},
      // The magic, cut short.
      {"\x93NUM", "x.npy: not an NPY file (bad magic)"},
      // Magic without the version bytes.
      {std::string("\x93NUMPY\x01", 7), "x.npy: truncated header: the version is cut off"},
      // A version numpy never wrote.
      {std::string("\x93NUMPY\x04\x00\x10\x00", 10), "x.npy: unsupported NPY format version 4.0"},
      // A minor version other than 0.
      {std::string("\x93NUMPY\x01\x01\x10\x00", 10), "x.npy: unsupported NPY format version 1.1"},
      // The header length field cut off.
      {std::string("\x93NUMPY\x02\x00\x10\x00", 10),
       "x.npy: truncated header: the length is cut off"},
      // A header length past numpy's limit is refused before it is read.
      {std::string("\x93NUMPY\x02\x00\x11\x27\x00\x00", 12),
       "x.npy: header is 10001 bytes, over numpy's limit of 10000"},
      // A header shorter than its length field says.
      {std::string("\x93NUMPY\x01\x00\x40\x00{'descr'", 18),
       "x.npy: truncated header: expected 64 bytes, file has 8"},
      // A header that is not a dict.
      {npy_bytes("['descr', '<f4']"), "x.npy: malformed header: not a dict"},
      // A dict that is never closed.
      {npy_bytes("{'descr': '<f4', 'shape': (3,)"), "x.npy: malformed header: missing '}'"},
      // Python code instead of a literal.
      {npy_bytes("{'descr': __import__('os'), 'fortran_order': False, 'shape': ()}"),
       "x.npy: malformed header: unexpected character at offset 10"},
      // A key numpy does not write.
      {npy_bytes("{" + f4 + ", 'shape': (3,), 'extra': 1}"),
       "x.npy: malformed header: unexpected key 'extra'"},
      // A missing key.
      {npy_bytes("{" + f4 + "}"), "x.npy: malformed header: no 'shape' key"},
      // A dtype numpy does not know.
      {npy_bytes("{'descr': '<x9', 'fortran_order': False, 'shape': (3,)}"),
       "x.npy: unsupported dtype '<x9'"},
      // A dtype of the wrong type.
      {npy_bytes("{'descr': 4, 'fortran_order': False, 'shape': (3,)}"),
       "x.npy: malformed header: 'descr' is not a dtype"},
      // fortran_order must be a boolean.
      {npy_bytes("{'descr': '<f4', 'fortran_order': 0, 'shape': (3,)}"),
       "x.npy: malformed header: 'fortran_order' is not True or False"},
      // A shape that is a list, not a tuple.
      {npy_bytes("{" + f4 + ", 'shape': [3]}"), "x.npy: malformed header: 'shape' is not a tuple"},
      // A shape entry that is not an integer.
      {npy_bytes("{" + f4 + ", 'shape': (3, 'a')}"),
       "x.npy: malformed header: shape entry 'a' is not an integer"},
      // A negative dimension.
      {npy_bytes("{" + f4 + ", 'shape': (3, -1)}"), "x.npy: negative dimension -1 in shape"},
      // A dimension past 2^64.
      {npy_bytes("{" + f4 + ", 'shape': (99999999999999999999,)}"),
       "x.npy: dimension 99999999999999999999 in shape is too large"},
      // More axes than numpy allows.
      {npy_bytes("{" + f4 + ", 'shape': (" + thirty_three_axes + ")}"),
       "x.npy: shape has 33 dimensions, more than the 32 numpy allows"},
      // Nesting meant to exhaust the stack.
      {npy_bytes("{'descr': " + std::string(100, '[') + "}"),
       "x.npy: malformed header: nested too deeply"},
      // An unterminated string.
      {npy_bytes("{'descr: '<f4'}"), "x.npy: malformed header: expected ':' after a dict key"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.message);
    CHECK_THROWS_WITH_AS(parse(r.bytes), r.message, error);
  }
}

TEST_CASE("npy: a shape whose size overflows is refused before anything is allocated") {
  auto bytes =
      npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2)}");
  auto header = parse(bytes);
  CHECK_THROWS_WITH_AS(describe_npy(header, "x.npy", "x", file_format::npy, bytes.size()),
                       "x.npy: shape is too large: its size overflows 64 bits", error);
}

TEST_CASE("npy: a header promising more data than the file holds is refused at once") {
  // 10^20 elements claimed by a 100-byte file: refused from the sizes alone.
  auto bytes =
      npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (10000000000, 10000000000)}");
  auto header = parse(bytes);
  CHECK_THROWS_WITH_AS(describe_npy(header, "x.npy", "x", file_format::npy, bytes.size()),
                       "x.npy: shape is too large: its size overflows 64 bits", error);
  auto short_data =
      npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (100,)}", std::string(40, '\0'));
  CHECK_THROWS_WITH_AS(
      describe_npy(parse(short_data), "x.npy", "x", file_format::npy, short_data.size()),
      "x.npy: truncated data: header says 400 bytes, file has 40", error);
}

TEST_CASE("npy: elements come out in native byte order for every dtype") {
  testing::temp_dir dir;
  // 1.5 in each float type and 0x0102... in the integers, stored big-endian.
  struct row {
    const char* descr;
    std::string big_endian_bytes;
    double expected;
  };
  const row rows[] = {
      {">f2", std::string("\x3e\x00", 2), 1.5},
      {">f4", std::string("\x3f\xc0\x00\x00", 4), 1.5},
      {">f8", std::string("\x3f\xf8\x00\x00\x00\x00\x00\x00", 8), 1.5},
      {">i2", std::string("\xff\xfe", 2), -2},
      {">u4", std::string("\x00\x00\x01\x02", 4), 258},
      {">i8", std::string("\xff\xff\xff\xff\xff\xff\xff\xfd", 8), -3},
      {"|b1", std::string("\x01", 1), 1},
  };
  for (const auto& r : rows) {
    CAPTURE(r.descr);
    auto path = testing::write_file(
        dir.file("big.npy"),
        npy_bytes(fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ()}}", r.descr),
                  r.big_endian_bytes));
    auto source = open_npy_file(path);
    const auto& info = source->tensors().at(0);
    CHECK(info.name == "big");
    auto reader = source->open(0);
    auto bytes = read_all(*reader);
    double value = visit_dtype(*info.type, [&]<class T>(std::type_identity<T>) {
      return to_double(elements_of<T>(bytes)[0]);
    });
    CHECK(value == r.expected);
  }
}

TEST_CASE("npy: half floats widen exactly, subnormals, infinities and NaN included") {
  CHECK(to_double(float16_bits{0x3c00}) == 1.0);
  CHECK(to_double(float16_bits{0xc000}) == -2.0);
  CHECK(to_double(float16_bits{0x7bff}) == 65504.0);
  CHECK(to_double(float16_bits{0x0001}) == std::ldexp(1.0, -24));
  CHECK(to_double(float16_bits{0x8000}) == 0.0);
  CHECK(std::signbit(to_double(float16_bits{0x8000})));
  CHECK(to_double(float16_bits{0x7c00}) == std::numeric_limits<double>::infinity());
  CHECK(std::isnan(to_double(float16_bits{0x7e00})));
}

TEST_CASE("npy: large arrays stream in bounded blocks of whole elements") {
  testing::temp_dir dir;
  const std::uint64_t count = 3 * (kBlockBytes / 4) + 7;
  std::string data(count * 4, '\0');
  for (std::uint64_t i = 0; i < count; ++i) {
    float value = static_cast<float>(i);
    std::memcpy(data.data() + i * 4, &value, 4);
  }
  auto path = dir.file("big.npy");
  testing::write_file(path, npy_header_bytes(dtype::float32, {count}) + data);
  auto source = open_npy_file(path);
  auto reader = source->open(0);
  std::size_t blocks = 0;
  std::uint64_t seen = 0;
  for (auto block = reader->next(); !block.empty(); block = reader->next()) {
    CHECK(block.size() <= kBlockBytes);
    CHECK(block.size() % 4 == 0);
    auto values = elements_of<float>(block);
    CHECK(values.front() == static_cast<float>(seen));
    seen += values.size();
    ++blocks;
  }
  CHECK(seen == count);
  CHECK(blocks == 4);
}

TEST_CASE("npy: the header featpool writes is numpy's: 64-aligned, version 1.0") {
  auto header = npy_header_bytes(dtype::float32, {2, 3});
  CHECK(header.size() % 64 == 0);
  CHECK(header.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  CHECK(header.find("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }") == 10);
  CHECK(header.back() == '\n');
  CHECK(npy_header_bytes(dtype::bool_, {7}).find("'|b1'") != std::string::npos);
  CHECK(npy_header_bytes(dtype::int8, {7}).find("(7,)") != std::string::npos);
  auto round_trip = parse(header + std::string(24, '\0'));
  CHECK(round_trip.shape == std::vector<std::uint64_t>{2, 3});
  CHECK(round_trip.data_offset == header.size());
}

// A valid file cut at every length must give a clean error, never a crash
// and never a silent short read.
TEST_CASE("npy: a file truncated at every byte gives a clean error") {
  testing::temp_dir dir;
  std::string data(6 * 8, '\0');
  for (int i = 0; i < 6; ++i) data[static_cast<std::size_t>(i) * 8] = static_cast<char>(i + 1);
  std::string whole = npy_header_bytes(dtype::float64, {2, 3}) + data;
  auto path = dir.file("cut.npy");
  for (std::size_t length = 0; length < whole.size(); ++length) {
    CAPTURE(length);
    testing::write_file(path, std::string_view(whole).substr(0, length));
    try {
      auto source = open_npy_file(path);
      auto reader = source->open(0);
      read_all(*reader);
      FAIL("a truncated file was read without error");
    } catch (const error& failure) {
      std::string message = failure.what();
      CHECK(message.starts_with(path + ": "));
      CHECK(message.find('\n') == std::string::npos);
    }
  }
  testing::write_file(path, whole);
  auto reader = open_npy_file(path)->open(0);
  CHECK(read_all(*reader).size() == data.size());
}

TEST_CASE("npy: a stream that ends early is reported as truncated data") {
  auto bytes =
      npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (10,)}", std::string(12, '\0'));
  auto source = open_npy_stream(std::make_unique<memory_stream>(std::as_bytes(std::span(bytes))),
                                "-", "stdin");
  auto reader = source->open(0);
  CHECK_THROWS_WITH_AS(read_all(*reader),
                       "-:stdin: truncated data: header says 40 bytes, file has 12", error);
  CHECK_THROWS_WITH_AS(source->open(0), "-: a stream can be read only once", error);
}

}  // namespace
}  // namespace featpool
