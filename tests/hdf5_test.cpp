// The HDF5 reader and writer, through the loaded module exactly as the tool
// uses them. The test binary does not link HDF5 (that is the point of the
// module), so the reader's files are written by h5py, a required test
// dependency, once per run, and the writer's files are checked by h5py too.

#include "featpool/hdf5.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_files.hpp"
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "featpool/dtype.hpp"
#include "featpool/error.hpp"
#include "featpool/version.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Writes the test files into the folder given as its argument, with h5py's
// own view of each dataset in data.json and byte offsets in meta.json.
constexpr const char* kGenerator = R"py(
import json, os, sys
import h5py
import numpy as np

out = sys.argv[1]
meta = {}


def path(name):
    return os.path.join(out, name)


# Groups, links and names that sort differently from a depth-first walk.
with h5py.File(path("nested.h5"), "w") as f:
    f["a/b/c/deep"] = np.arange(4, dtype="i4")
    f["a/x"] = np.arange(3, dtype="f4")
    f["a-b"] = np.zeros(2, "u1")
    f["layer4/act"] = np.zeros((2, 3), "f4")
    f["z"] = np.arange(5, dtype="i8")
    f["hard"] = f["z"]  # a second hard link to the same dataset
    f["soft"] = h5py.SoftLink("/a/x")
    f["loop"] = h5py.SoftLink("/")
    f["ext"] = h5py.ExternalLink("data.h5", "/contiguous")
    f.create_group("empty")
    f["named_type"] = np.dtype("f8")

# Every kind of dataset.
with h5py.File(path("data.h5"), "w") as f:
    f["contiguous"] = np.arange(60, dtype="f4").reshape(3, 4, 5)
    f.create_dataset("gzip", data=np.arange(700, dtype="i2").reshape(100, 7), chunks=(10, 7),
                     compression="gzip", shuffle=True, fletcher32=True)
    f.create_dataset("lzf", data=np.arange(150, dtype="f8").reshape(50, 3), chunks=(8, 3),
                     compression="lzf")
    f["f16"] = (np.arange(24) / 4 - 2).astype("f2").reshape(4, 6)
    f["f16_big"] = f["f16"][()].astype(">f2")
    f["bool"] = np.array([True, False, False, True, True])
    f["big_f4"] = (np.arange(10) - 2.5).astype(">f4")
    f["big_i8"] = np.arange(-5, 5, dtype=">i8")
    f["u8"] = np.arange(256, dtype="u1")
    f["enum"] = np.array([0, 1, 2, 1],
                         dtype=h5py.enum_dtype({"R": 0, "G": 1, "B": 2}, basetype=">i2"))
    f["c64"] = np.arange(3, dtype="c8")
    f["c128_big"] = np.arange(3, dtype=">c16")
    f["s"] = np.array([b"ab", b"cdefg"])
    f.create_dataset("vs", data=["x", "yz"], dtype=h5py.string_dtype())
    f["compound"] = np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])
    f["compound_pad"] = np.zeros(2, dtype={"names": ["a", "b"], "formats": ["<i4", "<f8"],
                                           "offsets": [0, 8], "itemsize": 16})
    f.create_dataset("nested", (2,), dtype=[("a", "<i4"), ("n", [("x", ">u2"), ("s", "S3")]),
                                            ("arr", "<f4", (2, 3)), ("o", h5py.string_dtype()),
                                            ("it's", "?"), ("c", "<c8")])
    f["opaque"] = np.zeros(3, "V7")
    f.create_dataset("ref", (1,), dtype=h5py.ref_dtype)
    f.create_dataset("vlen", (2,), dtype=h5py.vlen_dtype("i4"))
    f.create_dataset("array", (3,), dtype=np.dtype(("<f4", (2,))))
    f["scalar"] = np.float64(3.5)
    f.create_dataset("null", data=h5py.Empty("f4"))
    f.create_dataset("no_rows", (0, 4), dtype="f4")
    a = f["contiguous"].attrs
    a["int"] = np.int64(-5)
    a["float"] = 2.5
    a["str"] = "hello"
    a["bytes"] = np.bytes_(b"ab")
    a["matrix"] = np.arange(6).reshape(2, 3)
    a["strings"] = ["a", "bc"]
    a["flag"] = True
    a["complex"] = np.complex64(1 + 2j)
    a["empty"] = h5py.Empty("f4")
    a["u64"] = np.uint64(2**64 - 1)
    a["half"] = np.float16(1.5)
    a["latin1"] = np.bytes_(b"caf\xe9")
    a["no_elements"] = np.zeros(0, "i8")
    a["no_rows"] = np.zeros((0, 2), "f4")
    views = {}

    def describe(name, obj):
        if isinstance(obj, h5py.Dataset):
            dcpl = obj.id.get_create_plist()
            views["/" + name] = {
                "dtype": str(obj.dtype), "shape": list(obj.shape or []),
                "nbytes": int(obj.nbytes), "chunks": list(obj.chunks) if obj.chunks else None,
                "filters": [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]}

    f.visititems(describe)
    views["/f16"]["native_hex"] = f["f16"][()].tobytes().hex()
    views["/bool"]["native_hex"] = f["bool"][()].tobytes().hex()
    with open(path("data.json"), "w") as j:
        json.dump(views, j)

# Datasets larger than a block.
with h5py.File(path("big.h5"), "w") as f:
    f["rows"] = np.arange(1500 * 1024, dtype="f4").reshape(1500, 1024)
    f.create_dataset("chunked", data=np.arange(2000 * 1024, dtype="i4").reshape(2000, 1024),
                     chunks=(300, 64), compression="gzip", compression_opts=1)
    f["wide"] = np.arange(2 * 1536 * 1024, dtype="f4").reshape(2, 1536, 1024)
    f.create_dataset("wide_chunked",
                     data=np.resize(np.arange(251, dtype="u1"), (2, 33000, 1024)),
                     chunks=(2, 1000, 1024), compression="gzip", compression_opts=1)

# Small files to break: in the oldest format (no metadata checksums), so a
# corrupted byte reaches the code that interprets it.
with h5py.File(path("small.h5"), "w", libver="earliest") as f:
    f["x"] = np.arange(16, dtype="f4")
    f["s"] = np.array([b"ab", b"cdefg"])
    f.create_dataset("g", data=np.arange(4000, dtype="f8"), chunks=(1000,), compression="gzip")
    f.create_dataset("f", data=np.arange(4000, dtype="f8"), chunks=(1000,), fletcher32=True)
    f.create_dataset("l", data=np.arange(4000, dtype="f8"), chunks=(1000,), compression="lzf")
    for name in ("g", "f", "l"):
        info = f[name].id.get_chunk_info(1)
        meta[name + "_chunk"] = [info.byte_offset, info.size]
    meta["x_header"] = h5py.h5o.get_info(f["x"].id).addr
    meta["g_header"] = h5py.h5o.get_info(f["g"].id).addr
    meta["x_data"] = f["x"].id.get_offset()

# The newest format, checksums and all, for the truncation loop.
with h5py.File(path("tiny.h5"), "w", libver="latest") as f:
    f["x"] = np.arange(8, dtype="f4")
    f.create_dataset("g", data=np.arange(32, dtype="f8"), chunks=(16,), compression="gzip")

# nested.h5 rewritten: /a/x changed, /layer4/act gone.
with h5py.File(path("changed.h5"), "w") as f:
    f["a/x"] = np.zeros(7, "f8")

with open(path("meta.json"), "w") as j:
    json.dump(meta, j)
)py";

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return std::move(bytes).str();
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  fs::remove(path);
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// The files h5py wrote, in a folder removed at exit.
class fixture {
 public:
  static const fixture& get() {
    static const fixture instance;
    return instance;
  }
  fixture(const fixture&) = delete;
  fixture& operator=(const fixture&) = delete;
  ~fixture() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  // A scratch path for a file a test makes.
  std::string scratch(const std::string& name) const { return (dir_ / "scratch" / name).string(); }
  const json& views() const { return views_; }
  const json& meta() const { return meta_; }

 private:
  fixture() {
    std::string pattern = (fs::temp_directory_path() / "featpool-hdf5-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    fs::create_directory(dir_ / "scratch");
    std::ofstream(dir_ / "make.py") << kGenerator;
    std::string command =
        "/usr/bin/python3 '" + (dir_ / "make.py").string() + "' '" + dir_.string() + "'";
    if (std::system(command.c_str()) != 0) {
      throw std::runtime_error("generating the HDF5 test files with h5py failed: " + command);
    }
    views_ = json::parse(read_bytes(dir_ / "data.json"));
    meta_ = json::parse(read_bytes(dir_ / "meta.json"));
  }

  fs::path dir_;
  json views_;
  json meta_;
};

std::vector<std::string> names_of(const featpool::tensor_source& source) {
  std::vector<std::string> names;
  for (const auto& info : source.tensors()) names.push_back(info.name);
  return names;
}

std::size_t index_of(const featpool::tensor_source& source, const std::string& name) {
  const auto& tensors = source.tensors();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].name == name) return i;
  }
  FAIL("no tensor " << name);
  return 0;
}

const featpool::tensor_info& info_of(const featpool::tensor_source& source,
                                     const std::string& name) {
  return source.tensors()[index_of(source, name)];
}

json attributes_of(featpool::tensor_source& source, const std::string& name) {
  return source.attributes(index_of(source, name));
}

struct read_result {
  std::vector<std::byte> bytes;
  std::vector<std::size_t> blocks;  // each block's size in bytes
};

read_result read_all(featpool::tensor_source& source, const std::string& name) {
  auto reader = source.open(index_of(source, name));
  read_result result;
  while (true) {
    auto block = reader->next();
    if (block.empty()) break;
    result.blocks.push_back(block.size());
    result.bytes.insert(result.bytes.end(), block.begin(), block.end());
  }
  return result;
}

template <class T>
std::vector<T> values_of(const read_result& read) {
  REQUIRE(read.bytes.size() % sizeof(T) == 0);
  std::vector<T> values(read.bytes.size() / sizeof(T));
  std::memcpy(values.data(), read.bytes.data(), read.bytes.size());
  return values;
}

template <class T>
std::vector<T> arange(std::size_t count, double start = 0) {
  std::vector<T> values(count);
  for (std::size_t i = 0; i < count; ++i)
    values[i] = static_cast<T>(start + static_cast<double>(i));
  return values;
}

std::string hex_of(std::span<const std::byte> bytes) {
  std::string hex;
  for (auto b : bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    hex += kDigits[std::to_integer<unsigned>(b) >> 4];
    hex += kDigits[std::to_integer<unsigned>(b) & 15];
  }
  return hex;
}

// Opens and reads every numeric tensor: what `featpool pool` does to a file.
void read_everything(const std::string& path) {
  auto source = featpool::open_hdf5_file(path);
  for (std::size_t i = 0; i < source->tensors().size(); ++i) {
    if (!source->tensors()[i].numeric()) continue;
    auto reader = source->open(i);
    while (!reader->next().empty()) {
    }
  }
}

std::string patched(const std::string& bytes, std::size_t offset, const std::string& replacement) {
  REQUIRE(offset + replacement.size() <= bytes.size());
  std::string copy = bytes;
  copy.replace(offset, replacement.size(), replacement);
  return copy;
}

// h5py's LZF dataset with its pipeline message rewritten to name Blosc
// (filter 32001), which no plugin provides here. In the version 1 pipeline
// message each filter is: id (2 bytes, little-endian), name length (2),
// flags (2), client data count (2), name (padded to 8), client data.
std::string with_blosc_instead_of_lzf(const std::string& bytes) {
  std::string lzf_entry("\x00\x7d\x08\x00", 4);  // id 32000, name length 8
  std::size_t at = bytes.find(lzf_entry);
  REQUIRE(at != std::string::npos);
  REQUIRE(bytes.substr(at + 8, 4) == std::string("lzf\0", 4));
  std::string copy = patched(bytes, at, std::string("\x01\x7d", 2));
  return patched(copy, at + 8, std::string("blosc\0\0\0", 8));
}

}  // namespace

// Runs `work` on a thread that has never called HDF5 and returns what it
// printed on stderr (captured through `capture`, a scratch file).
template <class F>
std::string stderr_of_new_thread(const std::string& capture, F&& work) {
  int saved = ::dup(2);
  int sink = ::open(capture.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(sink >= 0);
  ::dup2(sink, 2);
  std::thread worker(std::forward<F>(work));
  worker.join();
  ::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  ::close(sink);
  return read_bytes(capture);
}

TEST_CASE("hdf5: every dataset, recursively, sorted by full path") {
  const auto& files = fixture::get();
  auto source = featpool::open_hdf5_file(files.file("nested.h5"));
  // Soft and external links are not followed, the named datatype and the
  // groups are not tensors, and /z is the same dataset as /hard: listed once,
  // under the name met first.
  CHECK(names_of(*source) ==
        std::vector<std::string>{"/a-b", "/a/b/c/deep", "/a/x", "/hard", "/layer4/act"});
  const auto& act = info_of(*source, "/layer4/act");
  CHECK(act.file == files.file("nested.h5"));
  CHECK(act.format == featpool::file_format::hdf5);
  CHECK(act.shape == std::vector<std::uint64_t>{2, 3});
  CHECK(act.dtype_string == "float32");
  CHECK(act.type == featpool::dtype::float32);
  CHECK(act.stored_byte_order == featpool::byte_order::little);
  CHECK(act.order == featpool::memory_order::c);
  CHECK(act.nbytes == 24);
  CHECK_FALSE(act.chunks.has_value());
  CHECK(act.filters.empty());
  CHECK(attributes_of(*source, "/layer4/act") == json::object());
  CHECK(values_of<std::int32_t>(read_all(*source, "/a/b/c/deep")) == arange<std::int32_t>(4));
  CHECK(values_of<std::int64_t>(read_all(*source, "/hard")) == arange<std::int64_t>(5));
}

TEST_CASE("hdf5: shapes, sizes, chunks and filters agree with h5py") {
  const auto& files = fixture::get();
  auto source = featpool::open_hdf5_file(files.file("data.h5"));
  const json& views = files.views();
  CHECK(source->tensors().size() == views.size());
  for (const auto& info : source->tensors()) {
    CAPTURE(info.name);
    REQUIRE(views.contains(info.name));
    const json& view = views[info.name];
    CHECK(info.shape == view["shape"].get<std::vector<std::uint64_t>>());
    CHECK(info.nbytes == view["nbytes"].get<std::uint64_t>());
    if (view["chunks"].is_null()) {
      CHECK_FALSE(info.chunks.has_value());
    } else {
      CHECK(info.chunks == view["chunks"].get<std::vector<std::uint64_t>>());
    }
    static const std::map<int, std::string> kNames{
        {1, "gzip"}, {2, "shuffle"}, {3, "fletcher32"}, {32000, "lzf"}};
    std::vector<std::string> filters;
    for (int id : view["filters"].get<std::vector<int>>()) filters.push_back(kNames.at(id));
    CHECK(info.filters == filters);
  }
  CHECK(info_of(*source, "/gzip").filters ==
        std::vector<std::string>{"shuffle", "gzip", "fletcher32"});
  CHECK(info_of(*source, "/lzf").filters == std::vector<std::string>{"lzf"});
  CHECK(info_of(*source, "/lzf").chunks == std::vector<std::uint64_t>{8, 3});
}

TEST_CASE("hdf5: dtype names as numpy and h5py show them") {
  const auto& files = fixture::get();
  auto source = featpool::open_hdf5_file(files.file("data.h5"));
  using featpool::byte_order;
  using featpool::dtype;
  struct expected {
    std::string name;
    std::string dtype_string;
    std::optional<dtype> type;
    byte_order order;
  };
  const std::vector<expected> table{
      {"/contiguous", "float32", dtype::float32, byte_order::little},
      {"/gzip", "int16", dtype::int16, byte_order::little},
      {"/lzf", "float64", dtype::float64, byte_order::little},
      // h5py's float16 is an IEEE half; its bool an int8 enum FALSE/TRUE.
      {"/f16", "float16", dtype::float16, byte_order::little},
      {"/f16_big", "float16", dtype::float16, byte_order::big},
      {"/bool", "bool", dtype::bool_, byte_order::none},
      {"/big_f4", "float32", dtype::float32, byte_order::big},
      {"/big_i8", "int64", dtype::int64, byte_order::big},
      {"/u8", "uint8", dtype::uint8, byte_order::none},
      // Other enums are their base integer.
      {"/enum", "int16", dtype::int16, byte_order::big},
      {"/scalar", "float64", dtype::float64, byte_order::little},
      {"/no_rows", "float32", dtype::float32, byte_order::little},
      // Listed, never read.
      {"/c64", "complex64", std::nullopt, byte_order::little},
      {"/c128_big", "complex128", std::nullopt, byte_order::big},
      {"/s", "|S5", std::nullopt, byte_order::none},
      {"/vs", "object", std::nullopt, byte_order::none},
      {"/compound", "[('a', '<i4'), ('b', '<f8')]", std::nullopt, byte_order::none},
      {"/compound_pad",
       "{'names': ['a', 'b'], 'formats': ['<i4', '<f8'], 'offsets': [0, 8], 'itemsize': 16}",
       std::nullopt, byte_order::none},
      {"/nested",
       "[('a', '<i4'), ('n', [('x', '>u2'), ('s', 'S3')]), ('arr', '<f4', (2, 3)), ('o', 'O'), "
       "(\"it's\", '?'), ('c', '<c8')]",
       std::nullopt, byte_order::none},
      {"/opaque", "|V7", std::nullopt, byte_order::none},
      {"/ref", "object", std::nullopt, byte_order::none},
      {"/vlen", "object", std::nullopt, byte_order::none},
      {"/array", "('<f4', (2,))", std::nullopt, byte_order::none},
      // A null dataspace holds no data: listed as not numeric.
      {"/null", "float32", std::nullopt, byte_order::little},
  };
  CHECK(source->tensors().size() == table.size());
  for (const auto& row : table) {
    CAPTURE(row.name);
    const auto& info = info_of(*source, row.name);
    CHECK(info.dtype_string == row.dtype_string);
    CHECK(info.type == row.type);
    CHECK(info.stored_byte_order == row.order);
    // Where numpy's str(dtype) is the name itself, it is h5py's exactly.
    const std::string& h5py_name = files.views()[row.name]["dtype"].get_ref<const std::string&>();
    if (!row.dtype_string.starts_with("complex") && row.order != byte_order::big) {
      CHECK(info.dtype_string == h5py_name);
    }
  }
}

TEST_CASE("hdf5: contiguous, gzip + shuffle + fletcher32 and LZF datasets read back") {
  auto source = featpool::open_hdf5_file(fixture::get().file("data.h5"));
  CHECK(values_of<float>(read_all(*source, "/contiguous")) == arange<float>(60));
  CHECK(values_of<std::int16_t>(read_all(*source, "/gzip")) == arange<std::int16_t>(700));
  // 50 rows in chunks of 8: the last chunk is partly outside the dataset.
  CHECK(values_of<double>(read_all(*source, "/lzf")) == arange<double>(150));
  CHECK(values_of<std::uint8_t>(read_all(*source, "/u8")) == arange<std::uint8_t>(256));
}

TEST_CASE("hdf5: float16 and bool come through as numpy's raw bytes") {
  const auto& files = fixture::get();
  auto source = featpool::open_hdf5_file(files.file("data.h5"));
  auto half = read_all(*source, "/f16");
  CHECK(half.bytes.size() == 48);
  CHECK(hex_of(half.bytes) == files.views()["/f16"]["native_hex"].get<std::string>());
  CHECK(read_all(*source, "/f16_big").bytes == half.bytes);
  auto flags = read_all(*source, "/bool");
  CHECK(hex_of(flags.bytes) == "0100000101");
  CHECK(hex_of(flags.bytes) == files.views()["/bool"]["native_hex"].get<std::string>());
}

TEST_CASE("hdf5: big-endian datasets are read in native byte order") {
  auto source = featpool::open_hdf5_file(fixture::get().file("data.h5"));
  CHECK(values_of<float>(read_all(*source, "/big_f4")) == arange<float>(10, -2.5));
  CHECK(values_of<std::int64_t>(read_all(*source, "/big_i8")) == arange<std::int64_t>(10, -5));
  CHECK(values_of<std::int16_t>(read_all(*source, "/enum")) ==
        std::vector<std::int16_t>{0, 1, 2, 1});
}

TEST_CASE("hdf5: a scalar is one block; empty datasets have none") {
  auto source = featpool::open_hdf5_file(fixture::get().file("data.h5"));
  const auto& scalar = info_of(*source, "/scalar");
  CHECK(scalar.shape.empty());
  CHECK(scalar.nbytes == 8);
  auto read = read_all(*source, "/scalar");
  CHECK(read.blocks == std::vector<std::size_t>{8});
  CHECK(values_of<double>(read) == std::vector<double>{3.5});

  const auto& no_rows = info_of(*source, "/no_rows");
  CHECK(no_rows.shape == std::vector<std::uint64_t>{0, 4});
  CHECK(no_rows.nbytes == 0);
  CHECK(read_all(*source, "/no_rows").blocks.empty());

  const auto& null = info_of(*source, "/null");
  CHECK(null.shape.empty());
  CHECK(null.nbytes == 0);
  CHECK_FALSE(null.numeric());
  CHECK_THROWS_WITH_AS(read_all(*source, "/null"),
                       (null.file + ":/null: null dataspace: the dataset holds no data").c_str(),
                       featpool::error);
  CHECK_THROWS_WITH_AS(source->open(99),
                       (null.file + ": no tensor number 99: the file holds 24").c_str(),
                       featpool::error);
}

TEST_CASE("hdf5: attributes as JSON") {
  auto source = featpool::open_hdf5_file(fixture::get().file("data.h5"));
  json expected = {
      {"int", -5},
      {"float", 2.5},
      {"str", "hello"},
      {"bytes", "ab"},
      {"matrix", {{0, 1, 2}, {3, 4, 5}}},
      {"strings", {"a", "bc"}},
      {"flag", true},
      {"complex", "dtype complex64, shape ()"},
      {"empty", nullptr},
      {"u64", UINT64_MAX},
      {"half", 1.5},
      {"latin1", "caf\xef\xbf\xbd"},
      {"no_elements", json::array()},
      {"no_rows", json::array()},
  };
  CHECK(attributes_of(*source, "/contiguous") == expected);
  CHECK(attributes_of(*source, "/gzip") == json::object());
}

TEST_CASE("hdf5: large datasets are read in blocks of whole rows") {
  auto source = featpool::open_hdf5_file(fixture::get().file("big.h5"));
  constexpr std::size_t kRow = 1024 * 4;

  SUBCASE("contiguous: about kBlockBytes of rows at a time") {
    auto read = read_all(*source, "/rows");
    CHECK(read.blocks == std::vector<std::size_t>{1024 * kRow, 476 * kRow});
    CHECK(values_of<float>(read) == arange<float>(1500 * 1024));
  }
  SUBCASE("chunked: whole chunk rows (300), the first axis not a multiple of them") {
    auto read = read_all(*source, "/chunked");
    CHECK(read.blocks == std::vector<std::size_t>{900 * kRow, 900 * kRow, 200 * kRow});
    CHECK(values_of<std::int32_t>(read) == arange<std::int32_t>(2000 * 1024));
  }
  SUBCASE("a first-axis row larger than a block: rows of the next axis") {
    auto read = read_all(*source, "/wide");
    CHECK(read.blocks ==
          std::vector<std::size_t>{1024 * kRow, 512 * kRow, 1024 * kRow, 512 * kRow});
    CHECK(values_of<float>(read) == arange<float>(2 * 1536 * 1024));
  }
  SUBCASE("chunk rows too large for one block: whole chunks along the next axis") {
    auto read = read_all(*source, "/wide_chunked");
    // Per first-axis index, 33000 rows of 1 KiB in blocks of 4000 (the
    // chunk's extent times 4).
    std::vector<std::size_t> expected;
    for (int i = 0; i < 2; ++i) {
      for (int r = 0; r < 8; ++r) expected.push_back(4000 * 1024);
      expected.push_back(1000 * 1024);
    }
    CHECK(read.blocks == expected);
    auto values = values_of<std::uint8_t>(read);
    REQUIRE(values.size() == 2 * 33000 * 1024);
    bool all_right = true;
    for (std::size_t i = 0; i < values.size() && all_right; ++i) all_right = values[i] == i % 251;
    CHECK(all_right);
  }
}

TEST_CASE("hdf5: a filter this process cannot decode is listed, and named when read") {
  const auto& files = fixture::get();
  std::string path = files.scratch("blosc.h5");
  write_bytes(path, with_blosc_instead_of_lzf(read_bytes(files.file("small.h5"))));
  auto source = featpool::open_hdf5_file(path);
  CHECK(info_of(*source, "/l").filters == std::vector<std::string>{"filter 32001"});
  CHECK_THROWS_WITH_AS(read_all(*source, "/l"),
                       (path + ":/l: filter 32001 (blosc) is not available").c_str(),
                       featpool::error);
  // The rest of the file still reads.
  CHECK(values_of<double>(read_all(*source, "/g")) == arange<double>(4000));
}

TEST_CASE("hdf5: errors thrown inside the module are featpool::error here") {
  std::string path = fixture::get().file("data.h5");
  auto source = featpool::open_hdf5_file(path);
  try {
    source->open(index_of(*source, "/s"));
    FAIL("reading a string dataset did not throw");
  } catch (const featpool::error& e) {
    CHECK(e.file() == path);
    CHECK(e.tensor() == "/s");
    CHECK(e.reason() == "dtype |S5 is not numeric: its data cannot be read");
    CHECK(std::string(e.what()) == path + ":/s: dtype |S5 is not numeric: its data cannot be read");
  }
  try {
    featpool::open_hdf5_file(fixture::get().file("meta.json"));
    FAIL("a JSON file opened as HDF5");
  } catch (const featpool::error& e) {
    CHECK(e.file() == fixture::get().file("meta.json"));
    CHECK(e.tensor().empty());
    CHECK(e.reason() == "not an HDF5 file");
  }
}

TEST_CASE("hdf5: malformed inputs give one-line errors") {
  const auto& files = fixture::get();
  const std::string small = read_bytes(files.file("small.h5"));
  const std::string stored_eof = std::to_string(small.size());
  const json& meta = files.meta();
  auto chunk_offset = [&](const char* name) { return meta[name][0].get<std::size_t>(); };
  auto flipped = [](const std::string& bytes, std::size_t offset, std::size_t count) {
    std::string copy = bytes;
    for (std::size_t i = offset; i < offset + count; ++i) copy[i] = static_cast<char>(~copy[i]);
    return copy;
  };

  // The dataspace message of /g: version 1, rank 1, flags 1 (maximum
  // present), 5 reserved bytes, then the extent 4000 and the maximum 4000.
  auto over_maximum = [&](const std::string& bytes) {
    std::string extents("\xa0\x0f\0\0\0\0\0\0\xa0\x0f\0\0\0\0\0\0", 16);
    std::size_t at = bytes.find(extents, meta["g_header"].get<std::size_t>());
    REQUIRE(at != std::string::npos);
    return patched(bytes, at + 2, "\xff");
  };

  struct row {
    std::string label;
    std::function<std::string(const std::string&)> make;  // writes the input, returns its path
    std::string read;   // the tensor to read; empty: the listing fails already
    std::string where;  // what the message names after the file: "" or ":/tensor"
    std::string reason;
  };
  auto file_with = [](std::string bytes) {
    return [bytes](const std::string& path) {
      write_bytes(path, bytes);
      return path;
    };
  };
  const std::vector<row> table{
      // Text is not HDF5.
      {"text", file_with("hello, world\n"), "", "", "not an HDF5 file"},
      // Nothing at all.
      {"empty", file_with(""), "", "", "empty file"},
      // An NPY file given as HDF5.
      {"npy", file_with(std::string("\x93NUMPY\x01\x00", 8) + "{'descr': '<f4', }"), "", "",
       "not an HDF5 file"},
      // The signature alone: the superblock's fields are cut off, and HDF5
      // stumbles on the first address it decodes.
      {"signature only", file_with(small.substr(0, 8)), "", "", "bad byte number in an address"},
      // Cut inside the superblock, in the root group's entry.
      {"cut in superblock", file_with(small.substr(0, 40)), "", "",
       "ring type mismatch occurred for cache entry"},
      // Cut inside the object headers, before any data.
      {"cut in headers", file_with(small.substr(0, 1000)), "", "",
       "truncated file: it has 1000 bytes, its superblock says " + stored_eof},
      // Cut inside the data.
      {"cut in data", file_with(small.substr(0, small.size() - 100)), "", "",
       "truncated file: it has " + std::to_string(small.size() - 100) +
           " bytes, its superblock says " + stored_eof},
      // An unknown superblock version.
      {"superblock version", file_with(patched(small, 8, "\x07")), "", "",
       "bad superblock version number"},
      // An impossible size of file offsets in the superblock.
      {"offset size", file_with(patched(small, 13, "\x03")), "", "",
       "bad byte number in an address"},
      // The root group's object header address points into the superblock.
      {"root address", file_with(patched(small, 64, std::string("\x10\0", 2))), "", "",
       "bad object header version number"},
      // A dataset's object header with an unknown version.
      {"dataset header", file_with(patched(small, meta["x_header"].get<std::size_t>(), "\x09")), "",
       "", "bad object header version number"},
      // A chunked dataset's extent made larger than its maximum: HDF5 would
      // read it as 16 million fill values.
      {"extent over maximum", file_with(over_maximum(small)), "", ":/g",
       "corrupt dataspace: shape (16715680,) is over its maximum (4000,)"},
      // A gzip chunk with its deflate stream damaged.
      {"gzip chunk", file_with(flipped(small, chunk_offset("g_chunk") + 10, 64)), "/g", ":/g",
       "corrupt chunk (1000,): invalid deflate data"},
      // A chunk whose Fletcher-32 checksum no longer matches.
      {"fletcher32 chunk", file_with(flipped(small, chunk_offset("f_chunk") + 100, 4)), "/f", ":/f",
       "checksum mismatch in chunk (1000,)"},
      // An LZF chunk with its stream damaged: the filter's own reason.
      {"lzf chunk", file_with(flipped(small, chunk_offset("l_chunk"), 8)), "/l", ":/l",
       "invalid data for LZF decompression"},
      // A filter no plugin provides.
      {"missing filter", file_with(with_blosc_instead_of_lzf(small)), "/l", ":/l",
       "filter 32001 (blosc) is not available"},
      // Strings are listed, not read.
      {"string data", file_with(small), "/s", ":/s",
       "dtype |S5 is not numeric: its data cannot be read"},
      // A folder.
      {"directory",
       [](const std::string& path) {
         fs::create_directory(path);
         return path;
       },
       "", "", "Is a directory"},
      // Nothing there.
      {"missing", [](const std::string& path) { return path; }, "", "",
       "No such file or directory"},
      // A FIFO cannot hold an HDF5 file, and opening it must not block.
      {"fifo",
       [](const std::string& path) {
         REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
         return path;
       },
       "", "", "not a regular file: HDF5 needs random access"},
  };
  int number = 0;
  for (const auto& row : table) {
    CAPTURE(row.label);
    std::string path = row.make(files.scratch("malformed" + std::to_string(number++) + ".h5"));
    std::string expected = path + row.where + ": " + row.reason;
    if (row.read.empty()) {
      CHECK_THROWS_WITH_AS(featpool::open_hdf5_file(path), expected.c_str(), featpool::error);
    } else {
      auto source = featpool::open_hdf5_file(path);
      CHECK_THROWS_WITH_AS(read_all(*source, row.read), expected.c_str(), featpool::error);
    }
    try {
      read_everything(path);
    } catch (const featpool::error& e) {
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
  }
}

TEST_CASE("hdf5: a file truncated at every byte fails cleanly") {
  const auto& files = fixture::get();
  const std::string tiny = read_bytes(files.file("tiny.h5"));
  std::string path = files.scratch("truncated.h5");
  for (std::size_t size = 0; size < tiny.size(); ++size) {
    write_bytes(path, tiny.substr(0, size));
    try {
      read_everything(path);
      FAIL("truncated at " << size << " bytes, the file still read");
    } catch (const featpool::error& e) {
      std::string what = e.what();
      if (what.find('\n') != std::string::npos || e.file() != path) {
        FAIL("truncated at " << size << " bytes: " << what);
      }
    }
  }
  write_bytes(path, tiny);
  read_everything(path);
}

TEST_CASE("hdf5: no HDF5 error trace on stderr, whichever thread calls") {
  std::string path = fixture::get().scratch("corrupt-for-threads.h5");
  write_bytes(path, read_bytes(fixture::get().file("small.h5")).substr(0, 1000));
  int failures = 0;
  // A thread that never called HDF5 before, like a worker in the pool.
  auto printed = stderr_of_new_thread(fixture::get().scratch("stderr.txt"), [&] {
    try {
      featpool::open_hdf5_file(path);
    } catch (const featpool::error&) {
      ++failures;
    }
  });
  CHECK(failures == 1);
  CHECK(printed.empty());
}

TEST_CASE("hdf5: readers on several threads at once") {
  auto source = featpool::open_hdf5_file(fixture::get().file("big.h5"));
  std::vector<float> rows;
  std::vector<std::int32_t> chunked;
  std::thread first([&] { rows = values_of<float>(read_all(*source, "/rows")); });
  std::thread second([&] { chunked = values_of<std::int32_t>(read_all(*source, "/chunked")); });
  first.join();
  second.join();
  CHECK(rows == arange<float>(1500 * 1024));
  CHECK(chunked == arange<std::int32_t>(2000 * 1024));
}

TEST_CASE("hdf5: a dataset that changed since the listing is not misread") {
  const auto& files = fixture::get();
  std::string path = files.scratch("changing.h5");
  fs::copy_file(files.file("nested.h5"), path, fs::copy_options::overwrite_existing);
  auto source = featpool::open_hdf5_file(path);
  fs::copy_file(files.file("changed.h5"), path, fs::copy_options::overwrite_existing);
  CHECK_THROWS_WITH_AS(source->open(index_of(*source, "/a/x")),
                       (path + ":/a/x: the dataset changed since the file was listed").c_str(),
                       featpool::error);
  CHECK_THROWS_WITH_AS(
      source->open(index_of(*source, "/layer4/act")),
      (path + ":/layer4/act: cannot open the dataset: component not found").c_str(),
      featpool::error);
}

TEST_CASE("hdf5: without the module beside the executable, a one-line error") {
  // The loader loads once per process, so the check runs in a copy of this
  // test binary placed in a folder of its own.
  std::string folder = fixture::get().scratch("alone");
  fs::create_directories(folder);
  std::string copy = folder + "/featpool_tests";
  fs::copy_file(fs::read_symlink("/proc/self/exe"), copy, fs::copy_options::overwrite_existing);
  std::string command = "'" + copy + "' --no-skip --reporters=console --no-intro=true " +
                        "-tc='hdf5: module missing (run by the case above)' > '" + folder +
                        "/out.txt' 2>&1";
  CHECK(std::system(command.c_str()) == 0);
  std::string output = read_bytes(folder + "/out.txt");
  CAPTURE(output);
  CHECK(output.find("1 passed") != std::string::npos);
}

TEST_CASE("hdf5: module missing (run by the case above)" * doctest::skip()) {
  std::string module = (fs::read_symlink("/proc/self/exe").parent_path() / "featpool_hdf5.so");
  CHECK_THROWS_WITH_AS(featpool::open_hdf5_file("x.h5"),
                       ("x.h5: cannot load the HDF5 module: " + module +
                        ": cannot open shared object file: No such file or directory")
                           .c_str(),
                       featpool::error);
  CHECK_THROWS_WITH_AS(featpool::create_hdf5_file(".out.h5.featpool-tmp-123456", "out.h5"),
                       ("out.h5: cannot load the HDF5 module: " + module +
                        ": cannot open shared object file: No such file or directory")
                           .c_str(),
                       featpool::error);
}

// The writer, through the loaded module, checked against featpool's own
// reader, against h5py and against itself (the bytes of a second run).

namespace {

using featpool::dtype;

constexpr dtype kAllDtypes[] = {dtype::bool_,  dtype::int8,    dtype::int16,   dtype::int32,
                                dtype::int64,  dtype::uint8,   dtype::uint16,  dtype::uint32,
                                dtype::uint64, dtype::float16, dtype::float32, dtype::float64};

template <class T>
void put(featpool::byte_buffer& data, std::size_t index, T value) {
  std::memcpy(data.data() + index * sizeof(T), &value, sizeof(T));
}

// A tensor whose elements differ from their neighbours: integers count up
// from -3 (wrapping in their width), bools follow every third one, floats
// step by 0.25 with a NaN carrying a payload, -0.0 and infinities among
// them, so that any conversion on the way shows in the bytes.
featpool::pooled_tensor make_tensor(dtype type, std::vector<std::uint64_t> shape, int seed = 0) {
  // float16 bit patterns: 0, 1, -2, inf, -inf, a NaN with payload, -0,
  // the smallest subnormal, the largest finite, 1/3.
  constexpr std::uint16_t kHalves[] = {0x0000, 0x3c00, 0xc000, 0x7c00, 0xfc00,
                                       0x7e01, 0x8000, 0x0001, 0x7bff, 0x3555};
  featpool::pooled_tensor tensor;
  tensor.shape = std::move(shape);
  tensor.type = type;
  std::size_t count = 1;
  for (auto extent : tensor.shape) count *= static_cast<std::size_t>(extent);
  tensor.data.resize(count * featpool::dtype_size(type));
  for (std::size_t i = 0; i < count; ++i) {
    std::int64_t n = static_cast<std::int64_t>(i) + seed - 3;
    double x = static_cast<double>(n) * 0.25;
    switch (type) {
      case dtype::bool_:
        put(tensor.data, i, static_cast<std::uint8_t>(n % 3 == 0));
        break;
      case dtype::int8:
        put(tensor.data, i, static_cast<std::int8_t>(n));
        break;
      case dtype::int16:
        put(tensor.data, i, static_cast<std::int16_t>(n * 1000));
        break;
      case dtype::int32:
        put(tensor.data, i, static_cast<std::int32_t>(n * 100000));
        break;
      case dtype::int64:
        put(tensor.data, i, n * 10000000000);
        break;
      case dtype::uint8:
        put(tensor.data, i, static_cast<std::uint8_t>(n));
        break;
      case dtype::uint16:
        put(tensor.data, i, static_cast<std::uint16_t>(n));
        break;
      case dtype::uint32:
        put(tensor.data, i, static_cast<std::uint32_t>(n));
        break;
      case dtype::uint64:
        put(tensor.data, i, static_cast<std::uint64_t>(n));
        break;
      case dtype::float16:
        put(tensor.data, i, kHalves[(i + static_cast<std::size_t>(seed)) % std::size(kHalves)]);
        break;
      case dtype::float32: {
        float value = static_cast<float>(x);
        if (i % 5 == 4) value = std::bit_cast<float>(std::uint32_t{0x7fc00123});
        if (i % 7 == 6) value = -INFINITY;
        put(tensor.data, i, value);
        break;
      }
      case dtype::float64: {
        double value = x;
        if (i % 5 == 4) value = std::bit_cast<double>(std::uint64_t{0xfff0000000000042});
        if (i % 7 == 6) value = -0.0;
        put(tensor.data, i, value);
        break;
      }
      case dtype::bfloat16:  // pooled as float32: never an output's dtype
        throw std::logic_error("no pooled tensor is bfloat16");
    }
  }
  return tensor;
}

featpool::provenance origin_of(const std::string& name, const featpool::pooled_tensor& tensor) {
  std::vector<std::uint64_t> input_shape;
  for (auto extent : tensor.shape) input_shape.push_back(extent * 2);
  return {"max", "7x7", "NHWC", "inputs/in.h5:" + name, input_shape};
}

struct named_tensor {
  std::string name;
  featpool::pooled_tensor tensor;
};

void write_tensors(const std::string& path, const std::vector<named_tensor>& tensors) {
  auto writer = featpool::create_hdf5_file(path, path);
  for (const auto& [name, tensor] : tensors) writer->write(name, tensor, origin_of(name, tensor));
  writer->close();
}

// Every dtype in three shapes (rank 3, rank 0, a zero-length axis), deep
// groups, a name without its leading slash, a tensor larger than a block.
std::vector<named_tensor> sample_tensors() {
  std::vector<named_tensor> tensors;
  for (auto type : kAllDtypes) {
    std::string name(featpool::dtype_name(type));
    tensors.push_back({"/dtypes/" + name, make_tensor(type, {2, 3, 4})});
    tensors.push_back({"/scalar/" + name, make_tensor(type, {}, 2)});
    tensors.push_back({"/empty/" + name, make_tensor(type, {2, 0, 3})});
  }
  tensors.push_back({"/deep/a/b/c/d/vector", make_tensor(dtype::float32, {7})});
  tensors.push_back({"no_leading_slash/x", make_tensor(dtype::int16, {1, 1, 1, 1, 1})});
  tensors.push_back({"/big", make_tensor(dtype::float32, {2, 1024, 520})});
  return tensors;
}

std::string canonical(const std::string& name) { return name[0] == '/' ? name : "/" + name; }

json expected_attributes(const std::string& name, const featpool::pooled_tensor& tensor) {
  auto origin = origin_of(name, tensor);
  return {{"featpool_op", "max"},
          {"featpool_size", "7x7"},
          {"featpool_layout", "NHWC"},
          {"featpool_source", origin.source},
          {"featpool_input_shape", origin.input_shape},
          {"featpool_version", featpool::kVersion}};
}

// What h5py sees in a file: every object's timestamp, and for datasets the
// dtype, shape, chunks, data (up to 64 KiB) and attributes (values with
// their Python type).
constexpr const char* kH5pyView = R"py(
import json, sys
import h5py

view = {}
with h5py.File(sys.argv[1], "r") as f:
    view["/"] = {"mtime": h5py.h5g.get_objinfo(f.id, b"/").mtime}

    def describe(name, obj):
        entry = {"mtime": h5py.h5g.get_objinfo(f.id, name.encode()).mtime}
        if isinstance(obj, h5py.Dataset):
            attrs = {}
            for key, value in obj.attrs.items():
                if isinstance(value, str):
                    attrs[key] = ["str", value]
                else:
                    attrs[key] = [type(value).__name__, str(value.dtype), value.tolist()]
            data = obj[()].tobytes()
            entry.update(dtype=str(obj.dtype), shape=list(obj.shape), chunks=obj.chunks,
                         hex=data.hex() if len(data) <= 65536 else None, attrs=attrs)
        view["/" + name] = entry

    f.visititems(describe)
with open(sys.argv[2], "w") as out:
    json.dump(view, out)
)py";

json h5py_view(const featpool::testing::temp_dir& dir, const std::string& path) {
  std::string script = dir.file("view.py");
  std::string output = dir.file("view.json");
  std::ofstream(script) << kH5pyView;
  std::string command = "/usr/bin/python3 '" + script + "' '" + path + "' '" + output + "'";
  REQUIRE(std::system(command.c_str()) == 0);
  return json::parse(read_bytes(output));
}

}  // namespace

TEST_CASE("hdf5 writer: every dtype and shape reads back byte for byte") {
  featpool::testing::temp_dir dir;
  std::string path = dir.file("out.h5");
  auto tensors = sample_tensors();
  write_tensors(path, tensors);

  auto source = featpool::open_hdf5_file(path);
  std::vector<std::string> expected_names;
  for (const auto& t : tensors) expected_names.push_back(canonical(t.name));
  std::sort(expected_names.begin(), expected_names.end());
  CHECK(names_of(*source) == expected_names);
  for (const auto& [name, tensor] : tensors) {
    const std::string& tensor_name = name;  // Clang 14 cannot capture a structured binding
    CAPTURE(tensor_name);
    const auto& info = info_of(*source, canonical(name));
    CHECK(info.shape == tensor.shape);
    REQUIRE(info.type == tensor.type);
    CHECK(info.dtype_string == featpool::dtype_name(tensor.type));
    CHECK(info.nbytes == tensor.data.size());
    CHECK_FALSE(info.chunks.has_value());
    CHECK(info.filters.empty());
    CHECK(std::ranges::equal(read_all(*source, canonical(name)).bytes, tensor.data));
  }
}

TEST_CASE("hdf5 writer: provenance attributes on every dataset") {
  featpool::testing::temp_dir dir;
  std::string path = dir.file("out.h5");
  auto tensors = sample_tensors();
  write_tensors(path, tensors);
  auto source = featpool::open_hdf5_file(path);
  for (const auto& [name, tensor] : tensors) {
    const std::string& tensor_name = name;  // Clang 14 cannot capture a structured binding
    CAPTURE(tensor_name);
    CHECK(attributes_of(*source, canonical(name)) == expected_attributes(name, tensor));
  }
  // A rank-0 input shape is an empty array, not a missing attribute.
  std::string scalar_path = dir.file("scalar.h5");
  auto writer = featpool::create_hdf5_file(scalar_path, scalar_path);
  writer->write("/s", make_tensor(dtype::float64, {}),
                featpool::provenance{"avg", "1", "NCL", "x.npy", {}});
  writer->close();
  auto scalar = featpool::open_hdf5_file(scalar_path);
  CHECK(attributes_of(*scalar, "/s")["featpool_input_shape"] == json::array());
}

TEST_CASE("hdf5 writer: h5py reads the dtypes, data and attributes as written") {
  featpool::testing::temp_dir dir;
  std::string path = dir.file("out.h5");
  auto tensors = sample_tensors();
  write_tensors(path, tensors);
  json view = h5py_view(dir, path);
  std::size_t datasets = 0;
  for (const auto& [name, entry] : view.items()) {
    const std::string& tensor_name = name;  // Clang 14 cannot capture a structured binding
    CAPTURE(tensor_name);
    // No object carries a timestamp.
    CHECK(entry["mtime"] == 0);
    datasets += entry.contains("dtype");
  }
  CHECK(datasets == tensors.size());
  for (const auto& [name, tensor] : tensors) {
    const std::string& tensor_name = name;  // Clang 14 cannot capture a structured binding
    CAPTURE(tensor_name);
    const json& entry = view.at(canonical(name));
    // numpy's own names: bool and float16 included.
    CHECK(entry["dtype"] == featpool::dtype_name(tensor.type));
    CHECK(entry["shape"] == tensor.shape);
    CHECK(entry["chunks"].is_null());
    if (tensor.data.size() <= 65536) CHECK(entry["hex"] == hex_of(tensor.data));
    auto origin = origin_of(name, tensor);
    json attrs = {{"featpool_op", {"str", "max"}},
                  {"featpool_size", {"str", "7x7"}},
                  {"featpool_layout", {"str", "NHWC"}},
                  {"featpool_source", {"str", origin.source}},
                  {"featpool_input_shape", {"ndarray", "int64", origin.input_shape}},
                  {"featpool_version", {"str", featpool::kVersion}}};
    CHECK(entry["attrs"] == attrs);
  }
}

TEST_CASE("hdf5 writer: the same tensors give the same bytes") {
  featpool::testing::temp_dir dir;
  write_tensors(dir.file("first.h5"), sample_tensors());
  // Other files in between, so that memory the library reuses held other
  // bytes: many groups and datasets, long attribute strings.
  std::vector<named_tensor> others;
  for (int i = 0; i < 300; ++i) {
    others.push_back(
        {fmt::format("/g{}/{}/t{}", i % 17, std::string(static_cast<std::size_t>(i % 40), 'n'), i),
         make_tensor(kAllDtypes[i % 12], {static_cast<std::uint64_t>(i % 5 + 1)}, i)});
  }
  write_tensors(dir.file("other.h5"), others);
  write_tensors(dir.file("second.h5"), sample_tensors());
  CHECK(read_bytes(dir.file("first.h5")) == read_bytes(dir.file("second.h5")));

  // And in another process, at another time.
  std::string command = "FEATPOOL_TEST_OUTPUT='" + dir.file("third.h5") + "' '" +
                        fs::read_symlink("/proc/self/exe").string() +
                        "' --no-skip --no-intro=true --reporters=console " +
                        "-tc='hdf5 writer: write the sample file (run by the case above)' > '" +
                        dir.file("third.txt") + "' 2>&1";
  REQUIRE(std::system(command.c_str()) == 0);
  CHECK(read_bytes(dir.file("first.h5")) == read_bytes(dir.file("third.h5")));
}

TEST_CASE("hdf5 writer: write the sample file (run by the case above)" * doctest::skip()) {
  const char* path = std::getenv("FEATPOOL_TEST_OUTPUT");
  REQUIRE(path != nullptr);
  write_tensors(path, sample_tensors());
}

TEST_CASE("hdf5 writer: names taken, paths through datasets and bad data are errors") {
  featpool::testing::temp_dir dir;
  std::string path = dir.file(".out.h5.featpool-tmp-123456");
  auto writer = featpool::create_hdf5_file(path, "out.h5");
  auto tensor = make_tensor(dtype::float32, {2, 3});
  auto origin = origin_of("/a/x", tensor);
  writer->write("/a/x", tensor, origin);
  CHECK_THROWS_WITH_AS(writer->write("/a/x", tensor, origin),
                       "out.h5:/a/x: an object of that name already exists in the file",
                       featpool::error);
  CHECK_THROWS_WITH_AS(writer->write("a//x", tensor, origin),
                       "out.h5:a//x: an object of that name already exists in the file",
                       featpool::error);
  CHECK_THROWS_WITH_AS(writer->write("/a", tensor, origin),
                       "out.h5:/a: an object of that name already exists in the file",
                       featpool::error);
  CHECK_THROWS_WITH_AS(writer->write("/a/x/y/z", tensor, origin),
                       "out.h5:/a/x/y/z: /a/x is a dataset, not a group", featpool::error);
  CHECK_THROWS_WITH_AS(writer->write("/", tensor, origin),
                       "out.h5:/: not a dataset name: it has no components", featpool::error);
  auto short_data = tensor;
  short_data.data.resize(20);
  CHECK_THROWS_WITH_AS(
      writer->write("/b/short", short_data, origin),
      "out.h5:/b/short: 20 bytes of data for a float32 tensor of shape (2, 3), which holds 24",
      featpool::error);
  // The failures left nothing behind, and the file is still good.
  writer->write("/a/y", tensor, origin);
  writer->close();
  CHECK_THROWS_WITH_AS(writer->write("/late", tensor, origin),
                       "out.h5:/late: the file is already closed", featpool::error);
  auto source = featpool::open_hdf5_file(path);
  CHECK(names_of(*source) == std::vector<std::string>{"/a/x", "/a/y"});
  json view = h5py_view(dir, path);
  CHECK_FALSE(view.contains("/b"));
}

TEST_CASE("hdf5 writer: a file in a folder that does not exist") {
  featpool::testing::temp_dir dir;
  std::string path = dir.file("missing/.x.h5.featpool-tmp-123456");
  CHECK_THROWS_WITH_AS(featpool::create_hdf5_file(path, "missing/x.h5"),
                       "missing/x.h5: cannot create the file: No such file or directory",
                       featpool::error);
}

TEST_CASE("hdf5 writer: no HDF5 error trace on stderr, whichever thread writes") {
  featpool::testing::temp_dir dir;
  int failures = 0;
  auto printed = stderr_of_new_thread(dir.file("stderr.txt"), [&] {
    try {
      auto writer = featpool::create_hdf5_file(dir.file("out.h5"), "out.h5");
      auto tensor = make_tensor(dtype::int8, {3});
      writer->write("/x", tensor, origin_of("/x", tensor));
      writer->write("/x", tensor, origin_of("/x", tensor));
    } catch (const featpool::error&) {
      ++failures;
    }
    try {
      featpool::create_hdf5_file(dir.file("missing/out.h5"), "out.h5");
    } catch (const featpool::error&) {
      ++failures;
    }
  });
  CHECK(failures == 2);
  CHECK(printed.empty());
}

TEST_CASE("hdf5 writer: a full disk is an error, never a crash") {
  featpool::testing::temp_dir dir;
  fs::path mount_point = dir.path() / "small";
  fs::create_directory(mount_point);
  // A 1 MiB tmpfs: mounting needs privileges a test run may not have.
  if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=1M") != 0) {
    MESSAGE("skipped: cannot mount a tmpfs: " << std::strerror(errno));
    return;
  }
  struct unmount_at_exit {
    const fs::path& at;
    ~unmount_at_exit() { ::umount2(at.c_str(), MNT_DETACH); }
  } unmount{mount_point};

  std::string path = (mount_point / "out.h5").string();
  int failed = 0;
  int completed = 0;
  // From data that cannot fit at all to metadata that just does not fit,
  // so the disk fills in write() or in close(), at different places.
  for (std::uint64_t floats : {400000u, 262144u, 261000u, 260000u, 255000u, 250000u, 200000u}) {
    for (std::uint64_t pieces : {1u, 2u, 64u}) {
      CAPTURE(floats);
      CAPTURE(pieces);
      try {
        auto writer = featpool::create_hdf5_file(path, "out.h5");
        for (std::uint64_t i = 0; i < pieces; ++i) {
          auto tensor = make_tensor(dtype::float32, {floats / pieces});
          writer->write(fmt::format("/g{}/t{}", i % 3, i), tensor, origin_of("/t", tensor));
        }
        writer->close();
        // A file that was closed without an error is complete.
        read_everything(path);
        ++completed;
      } catch (const featpool::error& e) {
        std::string what = e.what();
        CAPTURE(what);
        CHECK(e.file() == "out.h5");
        CHECK(what.find('\n') == std::string::npos);
        CHECK(what.find("No space left on device") != std::string::npos);
        ++failed;
      }
      fs::remove(path);
    }
  }
  CHECK(failed > 0);
  CHECK(completed > 0);
  // Failed files are closed all the same: no descriptor holds their space.
  int open_outputs = 0;
  for (const auto& fd : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ignored;
    open_outputs += fs::read_symlink(fd.path(), ignored).string().starts_with(mount_point.string());
  }
  CHECK(open_outputs == 0);
}
