#include "featpool/npz.hpp"

#include <stdlib.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "featpool/error.hpp"
#include "featpool/sink.hpp"

namespace {

namespace fs = std::filesystem;

// A scratch folder, removed with everything in it.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "featpool-npz-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const std::string& path, const std::string& bytes) {
  // A new file rather than a truncated one: ext4 flushes a file truncated to
  // zero and written again when it is closed, which makes the loops below slow.
  fs::remove(path);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs a script with numpy, a required test dependency, inside `dir`.
void run_python(const temp_dir& dir, const std::string& script) {
  write_file(dir.file("make.py"), script);
  std::string command = "cd '" + dir.path().string() + "' && /usr/bin/python3 make.py";
  REQUIRE(std::system(command.c_str()) == 0);
}

// The archives the tests read, each with its recipe.
constexpr const char* kSamplesScript = R"(
import io, struct, warnings, zipfile, zlib
import numpy as np
from numpy.lib import format as npf

def npy(a):
    out = io.BytesIO()
    npf.write_array(out, a)
    return out.getvalue()

np.savez('several.npz',
         f32=np.arange(12, dtype='<f4').reshape(3, 4),
         i64_big=np.arange(6, dtype='>i8').reshape(2, 3),
         fortran=np.asfortranarray(np.arange(6, dtype='<u2').reshape(2, 3)),
         flags=np.array([True, False, True]),
         scalar=np.float64(2.5),
         empty=np.zeros((0, 3), dtype='<f4'),
         half=np.arange(4, dtype='<f2'),
         i8=np.arange(-3, 3, dtype='i1'))
np.savez_compressed('compressed.npz', a=np.arange(1000, dtype='<f8'),
                    b=np.arange(24, dtype='>f4').reshape(2, 3, 4))
np.savez('big.npz', big=np.arange(1_500_000, dtype='<f4'))
np.savez_compressed('big_compressed.npz', big=np.arange(1_500_000, dtype='<f4'))
np.savez('slash.npz', **{'a/b': np.arange(3, dtype='<i4'), 'c': np.arange(2, dtype='<i4')})
np.savez('mixed.npz', labels=np.array(['ab', 'cde']), obj=np.array([1, 'a', None], dtype=object),
         z=np.arange(3, dtype='<c8'), x=np.arange(3, dtype='<f4'))
np.savez('one.npz', x=np.arange(10, dtype='<f4'))
np.savez_compressed('one_compressed.npz', x=np.arange(1000, dtype='<f4'))
np.save('plain.npy', np.arange(3, dtype='<f4'))

# Small limits make zipfile write zip64 sizes, offsets and end records.
limits = zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT
zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = 16, 1
with zipfile.ZipFile('zip64.npz', 'w') as zf:
    for name, a in [('x', np.arange(5, dtype='<i8')), ('y', np.arange(7, dtype='<f4'))]:
        with zf.open(name + '.npy', 'w', force_zip64=True) as f:
            npf.write_array(f, a)
zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = limits

with zipfile.ZipFile('extras.npz', 'w') as zf:
    zf.writestr(zipfile.ZipInfo('sub/'), b'')
    zf.writestr('readme.txt', b'not an array')
    zf.writestr('raw', npy(np.arange(4, dtype='<i2')))
    zf.writestr('sub/x.npy', npy(np.arange(2, dtype='<i2')))
    zf.writestr('tiny', b'ab')
with zipfile.ZipFile('no_arrays.npz', 'w') as zf:
    zf.writestr(zipfile.ZipInfo('sub/'), b'')
    zf.writestr('readme.txt', b'not an array')
zipfile.ZipFile('nothing.npz', 'w').close()
with zipfile.ZipFile('bzip2.npz', 'w', compression=zipfile.ZIP_BZIP2) as zf:
    zf.writestr('x.npy', npy(np.arange(1000, dtype='<i4')))
with zipfile.ZipFile('trailing.npz', 'w', compression=zipfile.ZIP_DEFLATED) as zf:
    zf.writestr('x.npy', npy(np.arange(10, dtype='<f4')) + bytes(1 << 20))

def raw_zip(path, payload, method, size, crc):
    # One member 'x.npy', written field by field so that any field can lie.
    name = b'x.npy'
    local = struct.pack('<4s5H3L2H', b'PK\x03\x04', 20, 0, method, 0, 0x21, crc, len(payload),
                        size, len(name), 0) + name
    central = struct.pack('<4s6H3L5H2L', b'PK\x01\x02', 20, 20, 0, method, 0, 0x21, crc,
                          len(payload), size, len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack('<4s4H2LH', b'PK\x05\x06', 0, 0, 1, 1, len(central),
                      len(local) + len(payload), 0)
    with open(path, 'wb') as f:
        f.write(local + payload + central + end)

def deflate(data):
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()

x = npy(np.arange(10, dtype='<f4'))
raw_zip('raw_deflate.npz', deflate(x), 8, len(x), zlib.crc32(x))
raw_zip('deflate_crc.npz', deflate(x), 8, len(x), zlib.crc32(x) ^ 1)
raw_zip('deflate_longer.npz', deflate(x), 8, len(x) + 1000, zlib.crc32(x))
# A deflate stream whose first block, stored, holds the whole member and
# whose second block has the reserved block type 3.
broken = b'\x00' + struct.pack('<2H', len(x), len(x) ^ 0xffff) + x + b'\x07'
raw_zip('deflate_broken.npz', broken, 8, len(x), zlib.crc32(x))
# A zip bomb: a megabyte of zeros after the data, the directory claiming
# only the NPY bytes.
bomb = x + bytes(1 << 20)
raw_zip('bomb.npz', deflate(bomb), 8, len(x), zlib.crc32(bomb))

# Malformed members, read by the table of errors.
with zipfile.ZipFile('lzma.npz', 'w', compression=zipfile.ZIP_LZMA) as zf:
    zf.writestr('x.npy', npy(np.arange(10, dtype='<f4')))
with zipfile.ZipFile('bad_magic.npz', 'w') as zf:
    zf.writestr('x.npy', b'hello, not an NPY file')
with zipfile.ZipFile('empty_member.npz', 'w') as zf:
    zf.writestr('x.npy', b'')
with zipfile.ZipFile('short.npz', 'w') as zf:
    zf.writestr('x.npy', npy(np.arange(20, dtype='<f4'))[:-40])
with zipfile.ZipFile('huge_claim.npz', 'w') as zf:
    header = io.BytesIO()
    npf.write_array_header_1_0(header, {'descr': '<f4', 'fortran_order': False,
                                        'shape': (1_000_000_000,)})
    zf.writestr('x.npy', header.getvalue() + bytes(8))
with zipfile.ZipFile('bad_header.npz', 'w') as zf:
    text = b"{'descr': '<f4', 'fortran_order': False}\n"
    zf.writestr('x.npy', b'\x93NUMPY\x01\x00' + len(text).to_bytes(2, 'little') + text)
warnings.simplefilter('ignore')  # zipfile warns about the duplicate it is told to write
with zipfile.ZipFile('duplicate.npz', 'w') as zf:
    zf.writestr('x.npy', npy(np.arange(2, dtype='<f4')))
    zf.writestr('x.npy', npy(np.arange(3, dtype='<f4')))
with zipfile.ZipFile('same_name.npz', 'w') as zf:
    zf.writestr('x', npy(np.arange(2, dtype='<f4')))
    zf.writestr('x.npy', npy(np.arange(3, dtype='<f4')))
with zipfile.ZipFile('newline.npz', 'w') as zf:
    zf.writestr('a\nb.npy', npy(np.arange(2, dtype='<f4')))
)";

// Made once for every test case, removed at exit.
const temp_dir& samples() {
  static temp_dir dir;
  static bool made = (run_python(dir, kSamplesScript), true);
  (void)made;
  return dir;
}

std::vector<std::byte> read_bytes(featpool::tensor_source& source, std::size_t index,
                                  std::size_t* blocks = nullptr) {
  auto reader = source.open(index);
  std::vector<std::byte> all;
  std::size_t count = 0;
  for (auto block = reader->next(); !block.empty(); block = reader->next()) {
    all.insert(all.end(), block.begin(), block.end());
    ++count;
  }
  if (blocks) *blocks = count;
  return all;
}

template <class T>
std::vector<T> read_values(featpool::tensor_source& source, std::size_t index) {
  auto bytes = read_bytes(source, index);
  REQUIRE(bytes.size() % sizeof(T) == 0);
  std::vector<T> values(bytes.size() / sizeof(T));
  std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

template <class T>
std::vector<T> iota(std::size_t count) {
  std::vector<T> values(count);
  for (std::size_t i = 0; i < count; ++i) values[i] = static_cast<T>(i);
  return values;
}

std::vector<std::string> names(const featpool::tensor_source& source) {
  std::vector<std::string> result;
  for (const auto& info : source.tensors()) result.push_back(info.name);
  return result;
}

// Lists `path` and reads every numeric tensor to its end.
void read_everything(const std::string& path) {
  auto source = featpool::open_npz_file(path);
  for (std::size_t i = 0; i < source->tensors().size(); ++i) {
    if (source->tensors()[i].numeric()) read_bytes(*source, i);
  }
}

// Lists and reads `path`: a featpool::error with a one-line message is a
// clean failure, anything else (another exception, a crash) is not.
void expect_clean_outcome(const std::string& path) {
  try {
    read_everything(path);
  } catch (const featpool::error& e) {
    std::string what = e.what();
    CHECK(what.find('\n') == std::string::npos);
    CHECK(what.starts_with(path + ":"));
  }
}

// Offset of the `nth` occurrence of a zip record signature.
std::size_t find_record(const std::string& zip, const char* signature, int nth = 0) {
  std::size_t at = zip.find(signature);
  while (at != std::string::npos && nth-- > 0) at = zip.find(signature, at + 1);
  REQUIRE(at != std::string::npos);
  return at;
}
constexpr const char* kCentralHeader = "PK\x01\x02";
constexpr const char* kEndRecord = "PK\x05\x06";

std::uint32_t get_u32(const std::string& bytes, std::size_t at) {
  std::uint32_t value = 0;
  for (std::size_t i = 4; i-- > 0;) value = value << 8 | static_cast<unsigned char>(bytes[at + i]);
  return value;
}

std::string patch_u16(std::string bytes, std::size_t at, std::uint16_t value) {
  bytes[at] = static_cast<char>(value & 0xff);
  bytes[at + 1] = static_cast<char>(value >> 8);
  return bytes;
}

std::string patch_u32(std::string bytes, std::size_t at, std::uint32_t value) {
  for (std::size_t i = 0; i < 4; ++i) bytes[at + i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return bytes;
}

std::string flip(std::string bytes, std::size_t at) {
  bytes[at] = static_cast<char>(bytes[at] ^ 0xff);
  return bytes;
}

// Where the first member's data starts: after its local header, name and
// extra field.
std::size_t first_data_offset(const std::string& zip) {
  auto name_length = static_cast<unsigned char>(zip[26]) | static_cast<unsigned char>(zip[27]) << 8;
  auto extra_length = static_cast<unsigned char>(zip[28]) | static_cast<unsigned char>(zip[29])
                                                                << 8;
  return 30 + static_cast<std::size_t>(name_length + extra_length);
}

}  // namespace

TEST_CASE("npz: np.savez members of every kind in the archive order") {
  auto source = featpool::open_npz_file(samples().file("several.npz"));
  const auto& tensors = source->tensors();
  CHECK(names(*source) == std::vector<std::string>{"f32", "i64_big", "fortran", "flags", "scalar",
                                                   "empty", "half", "i8"});
  for (const auto& info : tensors) {
    CHECK(info.file == samples().file("several.npz"));
    CHECK(info.format == featpool::file_format::npz);
    CHECK(info.numeric());
  }

  CHECK(tensors[0].shape == std::vector<std::uint64_t>{3, 4});
  CHECK(tensors[0].dtype_string == "float32");
  CHECK(tensors[0].stored_byte_order == featpool::byte_order::little);
  CHECK(tensors[0].nbytes == 48);
  CHECK(read_values<float>(*source, 0) == iota<float>(12));

  // Big-endian on disk, native once read.
  CHECK(tensors[1].stored_byte_order == featpool::byte_order::big);
  CHECK(tensors[1].dtype_string == "int64");
  CHECK(read_values<std::int64_t>(*source, 1) == iota<std::int64_t>(6));

  // Fortran order is handed out as stored: arange(6).reshape(2, 3) column by column.
  CHECK(tensors[2].order == featpool::memory_order::fortran);
  CHECK(read_values<std::uint16_t>(*source, 2) == std::vector<std::uint16_t>{0, 3, 1, 4, 2, 5});

  CHECK(tensors[3].dtype_string == "bool");
  CHECK(read_values<std::uint8_t>(*source, 3) == std::vector<std::uint8_t>{1, 0, 1});

  CHECK(tensors[4].shape.empty());
  CHECK(read_values<double>(*source, 4) == std::vector<double>{2.5});

  CHECK(tensors[5].shape == std::vector<std::uint64_t>{0, 3});
  CHECK(read_bytes(*source, 5).empty());

  // float16 bit patterns of 0, 1, 2, 3.
  CHECK(tensors[6].dtype_string == "float16");
  CHECK(read_values<std::uint16_t>(*source, 6) ==
        std::vector<std::uint16_t>{0x0000, 0x3c00, 0x4000, 0x4200});

  CHECK(read_values<std::int8_t>(*source, 7) == std::vector<std::int8_t>{-3, -2, -1, 0, 1, 2});
}

TEST_CASE("npz: np.savez_compressed members are inflated while streamed") {
  auto source = featpool::open_npz_file(samples().file("compressed.npz"));
  CHECK(names(*source) == std::vector<std::string>{"a", "b"});
  CHECK(source->tensors()[1].shape == std::vector<std::uint64_t>{2, 3, 4});
  CHECK(read_values<double>(*source, 0) == iota<double>(1000));
  CHECK(read_values<float>(*source, 1) == iota<float>(24));
}

TEST_CASE("npz: a member bigger than one block is read in several blocks") {
  for (const char* file : {"big.npz", "big_compressed.npz"}) {
    CAPTURE(file);
    auto source = featpool::open_npz_file(samples().file(file));
    REQUIRE(source->tensors().size() == 1);
    CHECK(source->tensors()[0].nbytes == 6'000'000);
    std::size_t blocks = 0;
    auto bytes = read_bytes(*source, 0, &blocks);
    CHECK(blocks == 2);
    std::vector<float> values(bytes.size() / sizeof(float));
    std::memcpy(values.data(), bytes.data(), bytes.size());
    CHECK(values == iota<float>(1'500'000));
  }
}

TEST_CASE("npz: member names keep their '/' and lose only the .npy suffix") {
  auto source = featpool::open_npz_file(samples().file("slash.npz"));
  CHECK(names(*source) == std::vector<std::string>{"a/b", "c"});
  CHECK(read_values<std::int32_t>(*source, 0) == iota<std::int32_t>(3));
}

TEST_CASE("npz: zip64 archives") {
  std::string path = samples().file("zip64.npz");
  // The sample really uses zip64 end records.
  REQUIRE(read_file(path).find("PK\x06\x06") != std::string::npos);
  auto source = featpool::open_npz_file(path);
  CHECK(names(*source) == std::vector<std::string>{"x", "y"});
  CHECK(read_values<std::int64_t>(*source, 0) == iota<std::int64_t>(5));
  CHECK(read_values<float>(*source, 1) == iota<float>(7));
}

TEST_CASE("npz: non-numeric members are listed but not read") {
  auto source = featpool::open_npz_file(samples().file("mixed.npz"));
  const auto& tensors = source->tensors();
  REQUIRE(names(*source) == std::vector<std::string>{"labels", "obj", "z", "x"});
  CHECK(!tensors[0].numeric());
  CHECK(tensors[0].dtype_string == "<U3");
  CHECK(tensors[0].shape == std::vector<std::uint64_t>{2});
  CHECK(!tensors[1].numeric());
  CHECK(tensors[1].dtype_string == "object");
  CHECK(!tensors[2].numeric());
  CHECK(tensors[2].dtype_string == "complex64");
  CHECK(tensors[3].numeric());
  CHECK(read_values<float>(*source, 3) == iota<float>(3));
  CHECK_THROWS_WITH_AS(
      source->open(0),
      (samples().file("mixed.npz") + ":labels: dtype <U3 is not numeric: its data cannot be read")
          .c_str(),
      featpool::error);
}

TEST_CASE("npz: other members are tensors only when they hold NPY data") {
  // Directory entries and files that are not NPY data are skipped, as they
  // are no arrays for numpy either; NPY data keeps its full member name.
  auto source = featpool::open_npz_file(samples().file("extras.npz"));
  CHECK(names(*source) == std::vector<std::string>{"raw", "sub/x"});
  CHECK(read_values<std::int16_t>(*source, 0) == iota<std::int16_t>(4));
  CHECK(read_values<std::int16_t>(*source, 1) == iota<std::int16_t>(2));

  CHECK(featpool::open_npz_file(samples().file("no_arrays.npz"))->tensors().empty());
  CHECK(featpool::open_npz_file(samples().file("nothing.npz"))->tensors().empty());
}

TEST_CASE("npz: bzip2 members and bytes after the NPY data") {
  auto bzip2 = featpool::open_npz_file(samples().file("bzip2.npz"));
  CHECK(read_values<std::int32_t>(*bzip2, 0) == iota<std::int32_t>(1000));
  // numpy ignores what follows the data; so does featpool, after checking
  // the CRC of the whole member.
  auto trailing = featpool::open_npz_file(samples().file("trailing.npz"));
  CHECK(read_values<float>(*trailing, 0) == iota<float>(10));
  // The hand-made archive the malformed ones are variations of.
  auto raw = featpool::open_npz_file(samples().file("raw_deflate.npz"));
  CHECK(read_values<float>(*raw, 0) == iota<float>(10));
}

TEST_CASE("npz: readers are independent") {
  auto source = featpool::open_npz_file(samples().file("compressed.npz"));
  auto a = source->open(0);
  auto b = source->open(1);
  auto again = source->open(0);
  CHECK(b->next().size() == 24 * sizeof(float));
  CHECK(a->next().size() == 1000 * sizeof(double));
  CHECK(b->next().empty());
  CHECK(again->next().size() == 1000 * sizeof(double));
  CHECK(a->next().empty());
  CHECK(again->next().empty());

  // Each reader owns its archive handle, so readers may run on threads of
  // their own.
  auto big = featpool::open_npz_file(samples().file("big_compressed.npz"));
  std::vector<std::vector<std::byte>> results(4);
  std::vector<std::thread> threads;
  for (auto& result : results) {
    threads.emplace_back([&big, &result] {
      auto reader = big->open(0);
      for (auto block = reader->next(); !block.empty(); block = reader->next()) {
        result.insert(result.end(), block.begin(), block.end());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) CHECK(result.size() == 6'000'000);
  CHECK(results[0] == results[3]);

  // A reader that failed does not hand its archive handle on: the next one
  // opens its own and fails the same way.
  std::string path = samples().file("deflate_crc.npz");
  auto corrupt = featpool::open_npz_file(path);
  for (int attempt = 0; attempt < 2; ++attempt) {
    CHECK_THROWS_WITH_AS(read_bytes(*corrupt, 0),
                         (path + ":x: corrupt data: CRC check failed").c_str(), featpool::error);
  }
}

TEST_CASE("npz: an archive replaced after it was listed is noticed") {
  temp_dir dir;
  std::string path = dir.file("changing.npz");
  write_file(path, read_file(samples().file("one.npz")));
  auto source = featpool::open_npz_file(path);
  // The first reader takes the handle the listing opened, on the file as listed.
  auto first = source->open(0);
  write_file(path, read_file(samples().file("short.npz")));
  // A second reader at the same time opens the path again and finds another file.
  CHECK_THROWS_WITH_AS(source->open(0),
                       (path + ":x: the archive changed since it was listed").c_str(),
                       featpool::error);
  auto block = first->next();
  std::vector<float> values(block.size() / sizeof(float));
  std::memcpy(values.data(), block.data(), block.size());
  CHECK(values == iota<float>(10));
  CHECK(first->next().empty());
}

TEST_CASE("npz: paths that are no archives") {
  temp_dir dir;
  CHECK_THROWS_WITH_AS(featpool::open_npz_file(dir.file("missing.npz")),
                       (dir.file("missing.npz") + ": No such file or directory").c_str(),
                       featpool::error);
  CHECK_THROWS_WITH_AS(featpool::open_npz_file(dir.path().string()),
                       (dir.path().string() + ": Is a directory").c_str(), featpool::error);
  // Opening a FIFO with no writer must not block.
  std::string fifo = dir.file("fifo.npz");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH_AS(
      featpool::open_npz_file(fifo),
      (fifo + ": not a regular file: a zip archive cannot be read as a stream").c_str(),
      featpool::error);
}

TEST_CASE("npz: malformed archives give one-line errors naming file and member") {
  const temp_dir& in = samples();
  const std::string one = read_file(in.file("one.npz"));
  const std::string bzip2 = read_file(in.file("bzip2.npz"));
  const std::size_t one_data = first_data_offset(one);
  const std::size_t one_central = find_record(one, kCentralHeader);
  const std::size_t one_end = find_record(one, kEndRecord);

  struct malformed {
    std::string bytes;
    std::string expected;  // the message after the file's path
    bool listed = false;   // listing succeeds, reading the data fails
  };
  const std::vector<malformed> rows = {
      // A file of zero bytes.
      {"", ": empty file"},
      // Text, not a zip archive.
      {"just some text\n", ": not an NPZ file: not a zip archive"},
      // A single NPY file named .npz.
      {read_file(in.file("plain.npy")), ": not an NPZ file: not a zip archive"},
      // The first three bytes of an archive: not even a whole signature.
      {one.substr(0, 3), ": not an NPZ file: not a zip archive"},
      // Cut inside the member's data.
      {one.substr(0, 100), ": truncated zip archive: the central directory at its end is missing"},
      // Cut inside the central directory.
      {one.substr(0, one_central + 10),
       ": truncated zip archive: the central directory at its end is missing"},
      // One byte short of the end record's end.
      {one.substr(0, one.size() - 1),
       ": truncated zip archive: the central directory at its end is missing"},
      // The end record claims a second disk.
      {patch_u16(one, one_end + 4, 1), ": split (multi-disk) zip archives are not supported"},
      // The end record points one byte past the central directory.
      {patch_u32(one, one_end + 16, get_u32(one, one_end + 16) + 1),
       ": damaged zip archive: its central directory is inconsistent"},
      // The central directory points one byte past the member's local header.
      {patch_u32(one, one_central + 42, get_u32(one, one_central + 42) + 1),
       ":x: damaged zip archive: the member's local header is missing or invalid"},
      // The encryption flag set, in the local header and the central directory.
      {patch_u16(patch_u16(one, 6, 1), one_central + 8, 1),
       ":x: encrypted members are not supported"},
      // LZMA, which Debian's libzip does not decompress.
      {read_file(in.file("lzma.npz")), ":x: compression method LZMA (14) is not supported"},
      // A compression method no one defined.
      {patch_u16(patch_u16(one, 8, 77), one_central + 10, 77),
       ":x: compression method 77 is not supported"},
      // A .npy member holding text.
      {read_file(in.file("bad_magic.npz")), ":x: not an NPY file (bad magic)"},
      // A .npy member of zero bytes.
      {read_file(in.file("empty_member.npz")), ":x: empty member"},
      // An NPY header without 'shape'.
      {read_file(in.file("bad_header.npz")), ":x: malformed header: no 'shape' key"},
      // A member 40 bytes shorter than its header says.
      {read_file(in.file("short.npz")), ":x: truncated data: header says 80 bytes, file has 40"},
      // A header claiming 4 GB over 8 bytes of data: refused before reading.
      {read_file(in.file("huge_claim.npz")),
       ":x: truncated data: header says 4000000000 bytes, file has 8"},
      // The zip directory says the member is one byte shorter than its data.
      {patch_u32(one, one_central + 24, get_u32(one, one_central + 24) - 1),
       ":x: truncated data: header says 40 bytes, file has 39"},
      // Two members of the same name.
      {read_file(in.file("duplicate.npz")), ":x: the archive holds two members named 'x.npy'"},
      // 'x' holding NPY data and 'x.npy' give the same tensor name.
      {read_file(in.file("same_name.npz")), ":x: members 'x' and 'x.npy' are both named 'x'"},
      // A newline in a member name would break the one-line messages.
      {read_file(in.file("newline.npz")),
       ": member name \"a\\nb.npy\" contains a control character"},
      // A flipped byte in stored data: the CRC check with the last block catches it.
      {flip(one, one_data + 130), ":x: corrupt data: CRC check failed", true},
      // The CRC in the zip directory does not match the deflated data.
      {read_file(in.file("deflate_crc.npz")), ":x: corrupt data: CRC check failed", true},
      // A deflate stream that breaks (a reserved block type) after the data.
      {read_file(in.file("deflate_broken.npz")), ":x: corrupt compressed data (zlib: data error)",
       true},
      // A flipped byte in the block CRC of bzip2 data (stream bytes 10 to 13).
      {flip(bzip2, first_data_offset(bzip2) + 10), ":x: corrupt compressed data", true},
      // The zip directory says a deflated member is 1000 bytes longer than it is.
      {read_file(in.file("deflate_longer.npz")),
       ":x: damaged zip archive: the member holds 168 bytes, the zip directory says 1168", true},
      // The same for a stored member: refused at listing, since stored data is as long as
      // the bytes that hold it.
      {patch_u32(one, one_central + 24, get_u32(one, one_central + 24) + 1000),
       ":x: damaged zip archive: the zip directory says the member holds 1168 bytes, more than "
       "its 168 stored bytes can"},
      // The zip directory says the member takes more bytes than the whole archive.
      {patch_u32(one, one_central + 20, 1u << 30),
       ":x: damaged zip archive: the zip directory says the member takes 1073741824 bytes, the "
       "archive has " +
           std::to_string(one.size())},
      // A zip bomb: reading stops where the zip directory says the member ends.
      {read_file(in.file("bomb.npz")),
       ":x: damaged zip archive: the member holds more than the 168 bytes the zip directory says",
       true},
  };

  temp_dir dir;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    std::string path = dir.file("bad" + std::to_string(i) + ".npz");
    write_file(path, row.bytes);
    std::string expected = path + row.expected;
    CAPTURE(i);
    CHECK(expected.find('\n') == std::string::npos);
    if (row.listed) {
      CHECK_NOTHROW(featpool::open_npz_file(path));
      CHECK_THROWS_WITH_AS(read_everything(path), expected.c_str(), featpool::error);
    } else {
      CHECK_THROWS_WITH_AS(featpool::open_npz_file(path), expected.c_str(), featpool::error);
    }
  }
}

TEST_CASE("npz: an archive cut at every length fails cleanly") {
  temp_dir dir;
  std::string path = dir.file("cut.npz");
  for (const char* sample : {"one.npz", "one_compressed.npz", "zip64.npz", "several.npz"}) {
    CAPTURE(sample);
    std::string bytes = read_file(samples().file(sample));
    for (std::size_t length = 0; length < bytes.size(); ++length) {
      CAPTURE(length);
      write_file(path, bytes.substr(0, length));
      expect_clean_outcome(path);
    }
  }
}

TEST_CASE("npz: an archive with any byte flipped fails cleanly or reads") {
  temp_dir dir;
  std::string path = dir.file("flipped.npz");
  for (const char* sample : {"one_compressed.npz", "several.npz", "zip64.npz"}) {
    CAPTURE(sample);
    std::string bytes = read_file(samples().file(sample));
    for (std::size_t at = 0; at < bytes.size(); ++at) {
      CAPTURE(at);
      write_file(path, flip(bytes, at));
      expect_clean_outcome(path);
    }
  }
}

TEST_CASE("npz: without the zip module beside the executable, a one-line error") {
  // The module is loaded once per process, so the check runs in a copy of
  // this test binary placed in a folder of its own.
  temp_dir folder;
  std::string copy = folder.file("featpool_tests");
  fs::copy_file(fs::read_symlink("/proc/self/exe"), copy);
  std::string command = "'" + copy + "' --no-skip --reporters=console --no-intro=true " +
                        "-tc='npz: zip module missing (run by the case above)' > '" +
                        folder.file("out.txt") + "' 2>&1";
  CHECK(std::system(command.c_str()) == 0);
  std::string output = read_file(folder.file("out.txt"));
  CAPTURE(output);
  CHECK(output.find("1 passed") != std::string::npos);
}

TEST_CASE("npz: zip module missing (run by the case above)" * doctest::skip()) {
  std::string module = fs::read_symlink("/proc/self/exe").parent_path() / "featpool_zip.so";
  std::string reason = "cannot load the zip module: " + module +
                       ": cannot open shared object file: No such file or directory";
  temp_dir dir;
  // An empty archive: its end of central directory record alone.
  std::string path = dir.file("empty.npz");
  write_file(path, std::string("PK\x05\x06", 4) + std::string(18, '\0'));
  CHECK_THROWS_WITH_AS(featpool::open_npz_file(path), (path + ": " + reason).c_str(),
                       featpool::error);
  // Missing files are named as such still: the module is loaded only for a
  // file libzip is to read.
  CHECK_THROWS_WITH_AS(featpool::open_npz_file(dir.file("missing.npz")),
                       (dir.file("missing.npz") + ": No such file or directory").c_str(),
                       featpool::error);
  std::string out = dir.file("out.npz");
  auto sink = featpool::create_sink(featpool::output_format::npz, out, false);
  featpool::pooled_tensor tensor;
  tensor.type = featpool::dtype::float32;
  tensor.shape = {1};
  tensor.data.resize(4);
  sink->write("x", tensor, std::nullopt);
  CHECK_THROWS_WITH_AS(sink->finish(), (out + ": " + reason).c_str(), featpool::error);
}
