// The parts of `featpool view`: slices, selecting and reading maps, levels,
// grid geometry, PNG encoding and the terminal image. The whole command is
// compared pixel by pixel with a numpy rebuild in tests/python/view_test.py.

#include <png.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "test_files.hpp"
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "featpool/discover.hpp"
#include "featpool/error.hpp"
#include "featpool/heat_map.hpp"
#include "featpool/map_selection.hpp"
#include "featpool/png_encoder.hpp"
#include "featpool/python_slice.hpp"
#include "featpool/terminal_image.hpp"

namespace featpool {
namespace {

using positions = std::vector<std::uint64_t>;

positions slice_of(std::string_view text, std::uint64_t length) {
  return slice_positions(parse_python_slice("--channels", text), length);
}

TEST_CASE("python slices select what Python's would") {
  CHECK(slice_of(":64", 16) == positions{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15});
  CHECK(slice_of("2:5", 10) == positions{2, 3, 4});
  CHECK(slice_of("-3:", 10) == positions{7, 8, 9});
  CHECK(slice_of("::-1", 4) == positions{3, 2, 1, 0});
  CHECK(slice_of("1:8:3", 10) == positions{1, 4, 7});
  CHECK(slice_of("-100:2", 10) == positions{0, 1});
  CHECK(slice_of("8:-100:-3", 10) == positions{8, 5, 2});
  CHECK(slice_of("5:2", 10).empty());
  CHECK(slice_of("20:30", 10).empty());
  CHECK(slice_of(":", 3) == positions{0, 1, 2});
  CHECK(slice_of("-1", 4) == positions{3});
  CHECK(slice_of("4", 4).empty());
  // Bounds past 64 bits clamp as Python's do.
  CHECK(slice_of("0:99999999999999999999", 3) == positions{0, 1, 2});
  CHECK(slice_of("-99999999999999999999::99999999999999999999", 3) == positions{0});
  CHECK(slice_of("99999999999999999999", 3).empty());
  CHECK(slice_of("-5", 4).empty());
}

TEST_CASE("malformed slices are usage errors") {
  for (const char* text : {"", "a:b", "1:2:0", "1:2:3:4", " 1", "1.5", "1:x"}) {
    CAPTURE(text);
    CHECK_THROWS_AS(parse_python_slice("--channels", text), usage_error);
  }
  CHECK(parse_index("--sample", "-2") == -2);
  CHECK_THROWS_AS(parse_index("--sample", "two"), usage_error);
}

TEST_CASE("levels: finite min and max per map, NaN and infinities apart") {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> values{0, 1, 2, std::nan(""), inf, -inf, 5, 5, 5, 5, inf, std::nan("")};
  auto levels = value_levels(values, 6, scale_mode::channel);
  // 1 of [0, 2] is 127.5, which rounds to even.
  CHECK(levels == std::vector<std::uint16_t>{0, 128, 255, kNanLevel, 255, 0,  //
                                             0, 0, 0, 0, 255, kNanLevel});
  auto global = value_levels(values, 6, scale_mode::global);
  CHECK(global == std::vector<std::uint16_t>{0, 51, 102, kNanLevel, 255, 0,  //
                                             255, 255, 255, 255, 255, kNanLevel});
}

TEST_CASE("levels: a map without finite values draws NaN and the ends only") {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> values{std::nan(""), inf, -inf};
  CHECK(value_levels(values, 3, scale_mode::channel) ==
        std::vector<std::uint16_t>{kNanLevel, 255, 0});
}

TEST_CASE("grid geometry: the integer upscale and the gaps") {
  auto grid = upscaled_grid(16, 7, 7, 0, 64);
  CHECK(grid.cols == 4);
  CHECK(grid.rows == 4);
  CHECK(grid.tile_width == 63);  // k = 64 / 7 = 9
  CHECK(grid.width() == 4 * 64 + 1);
  CHECK(grid.height() == 4 * 64 + 1);

  auto oblong = upscaled_grid(5, 5, 9, 0, 64);  // k = 64 / 9 = 7
  CHECK(oblong.cols == 3);
  CHECK(oblong.rows == 2);
  CHECK(oblong.tile_height == 35);
  CHECK(oblong.tile_width == 63);
  CHECK(oblong.width() == 3 * 64 + 1);
  CHECK(oblong.height() == 2 * 36 + 1);

  auto large = upscaled_grid(2, 100, 3, 5, 64);  // larger than the tile: k = 1
  CHECK(large.tile_height == 100);
  CHECK(large.tile_width == 3);
  CHECK(large.cols == 5);
  CHECK(large.rows == 1);
  CHECK(upscaled_grid(17, 1, 1, 0, 64).cols == 5);
}

TEST_CASE("grid rows: nearest neighbour, gaps and empty slots in the background") {
  // Three 1x2 maps, upscaled twice, in two columns.
  std::vector<std::uint16_t> levels{1, 2, 3, 4, 5, 6};
  auto grid = upscaled_grid(3, 1, 2, 2, 4);
  REQUIRE(grid.width() == 11);
  REQUIRE(grid.height() == 7);
  const auto bg = kBackgroundLevel;
  std::vector<std::uint16_t> row(grid.width());
  auto row_at = [&](std::uint64_t y) {
    grid_row(grid, levels, y, row);
    return row;
  };
  std::vector<std::uint16_t> blank(11, bg);
  CHECK(row_at(0) == blank);
  CHECK(row_at(1) == std::vector<std::uint16_t>{bg, 1, 1, 2, 2, bg, 3, 3, 4, 4, bg});
  CHECK(row_at(2) == row_at(1));
  CHECK(row_at(3) == blank);
  CHECK(row_at(4) == std::vector<std::uint16_t>{bg, 5, 5, 6, 6, bg, bg, bg, bg, bg, bg});
  CHECK(row_at(6) == blank);
}

TEST_CASE("fitting a grid to the terminal shrinks its tiles, keeping their aspect") {
  auto grid = upscaled_grid(16, 7, 14, 0, 64);  // tiles of 28x56
  CHECK(fitted_grid(grid, 1000).tile_width == grid.tile_width);
  auto fitted = fitted_grid(grid, 100);
  CHECK(fitted.tile_width == 23);   // (100 - 1) / 4 - 1
  CHECK(fitted.tile_height == 12);  // 28 * 23 / 56, rounded
  CHECK(fitted.width() <= 100);
  CHECK(fitted_grid(grid, 3).tile_width == 1);
}

// A tensor whose element at every position is that position, read back.
std::vector<double> read_back(const tensor_info& info, const std::string& letters,
                              const map_request& request, std::size_t per_block,
                              std::size_t* blocks = nullptr) {
  std::vector<float> values(info.element_count());
  std::iota(values.begin(), values.end(), 0.0f);
  testing::vector_reader<float> reader(values, per_block);
  auto selection = select_maps(info, parse_layout(letters), request);
  auto maps = read_maps(reader, dtype::float32, info, selection);
  if (blocks) *blocks = reader.blocks_read();
  return maps;
}

tensor_info tensor_of(std::vector<std::uint64_t> shape, memory_order order = memory_order::c) {
  tensor_info info;
  info.file = "x.npy";
  info.shape = std::move(shape);
  info.type = dtype::float32;
  info.order = order;
  return info;
}

map_request request_of(std::int64_t sample, std::string_view channels,
                       std::optional<std::int64_t> depth = std::nullopt) {
  return {sample, parse_python_slice("--channels", channels), depth};
}

TEST_CASE("reading maps: NCHW, one sample, channels in the slice's order") {
  auto info = tensor_of({2, 3, 2, 2});
  std::size_t blocks = 0;
  auto maps = read_back(info, "NCHW", request_of(-1, "::-2"), 5, &blocks);
  // Sample 1 starts at 12; channel 2 at 20, channel 0 at 12.
  CHECK(maps == std::vector<double>{20, 21, 22, 23, 12, 13, 14, 15});
  CHECK(blocks == 5);  // elements 0..24 of 24: the reader is read to the end
  std::size_t first_sample_blocks = 0;
  read_back(info, "NCHW", request_of(0, ":"), 5, &first_sample_blocks);
  CHECK(first_sample_blocks == 3);  // stops after element 11
}

TEST_CASE("reading maps: channels last, Fortran order, 1-D and 3-D maps") {
  // NHWC (1, 2, 3, 2): element (0, y, x, c) at 6y + 2x + c.
  auto nhwc = read_back(tensor_of({1, 2, 3, 2}), "NHWC", request_of(0, "1"), 4);
  CHECK(nhwc == std::vector<double>{1, 3, 5, 7, 9, 11});
  // Fortran (2, 2, 1, 3) NCHW: element (n, c, 0, x) at n + 2c + 4x.
  auto fortran =
      read_back(tensor_of({2, 2, 1, 3}, memory_order::fortran), "NCHW", request_of(1, ":"), 7);
  CHECK(fortran == std::vector<double>{1, 5, 9, 3, 7, 11});
  // NCL (1, 2, 4): one-pixel-high maps.
  auto strips = read_back(tensor_of({1, 2, 4}), "NCL", request_of(0, ":"), 3);
  CHECK(strips == std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7});
  // NCDHW (1, 1, 3, 2, 2): the middle depth by default, or --depth.
  auto middle = read_back(tensor_of({1, 1, 3, 2, 2}), "NCDHW", request_of(0, ":"), 4);
  CHECK(middle == std::vector<double>{4, 5, 6, 7});
  auto last = read_back(tensor_of({1, 1, 3, 2, 2}), "NCDHW", request_of(0, ":", -1), 4);
  CHECK(last == std::vector<double>{8, 9, 10, 11});
  // HW: no N and no C, one map.
  auto plain = read_back(tensor_of({2, 2}), "HW", request_of(0, ":64"), 4);
  CHECK(plain == std::vector<double>{0, 1, 2, 3});
}

// Reads the maps of an NPY file as view does: in place, with pread.
std::vector<double> read_npy_maps(const std::string& path, const map_request& request) {
  input_file file{path, path, "", std::nullopt, false};
  auto source = open_input(file);
  auto info = source->tensors().front();
  auto reader = source->open(0);
  REQUIRE(reader->raw());
  auto selection = select_maps(info, *default_layout(info.shape.size()), request);
  return read_maps(*reader, *info.type, info, selection);
}

TEST_CASE("reading maps in place: any byte order and memory order, only what is drawn") {
  testing::temp_dir dir;
  // (2, 3, 2, 2) float32 holding 0..23 in C order; big-endian; then Fortran order.
  std::string little;
  std::string big;
  for (std::uint32_t i = 0; i < 24; ++i) {
    float value = static_cast<float>(i);
    std::uint32_t bits;
    std::memcpy(&bits, &value, 4);
    for (int b = 0; b < 4; ++b) little += static_cast<char>((bits >> (8 * b)) & 0xff);
    for (int b = 3; b >= 0; --b) big += static_cast<char>((bits >> (8 * b)) & 0xff);
  }
  auto c_dict = [](std::string_view descr, std::string_view fortran) {
    return fmt::format("{{'descr': '{}', 'fortran_order': {}, 'shape': (2, 3, 2, 2), }}", descr,
                       fortran);
  };
  auto le =
      testing::write_file(dir.file("le.npy"), testing::npy_bytes(c_dict("<f4", "False"), little));
  auto be =
      testing::write_file(dir.file("be.npy"), testing::npy_bytes(c_dict(">f4", "False"), big));
  auto f =
      testing::write_file(dir.file("f.npy"), testing::npy_bytes(c_dict("<f4", "True"), little));
  std::vector<double> sample1_channels2_0{20, 21, 22, 23, 12, 13, 14, 15};
  CHECK(read_npy_maps(le, request_of(1, "::-2")) == sample1_channels2_0);
  CHECK(read_npy_maps(be, request_of(1, "::-2")) == sample1_channels2_0);
  // Fortran order: element (n, c, y, x) lies at n + 2c + 6y + 12x.
  CHECK(read_npy_maps(f, request_of(1, "2")) == std::vector<double>{5, 17, 11, 23});
  // A file cut short is refused when it is listed, before anything is read.
  auto cut = testing::write_file(dir.file("cut.npy"),
                                 testing::npy_bytes(c_dict("<f4", "False"), little.substr(0, 48)));
  input_file cut_file{cut, cut, "", std::nullopt, false};
  CHECK_THROWS_AS(open_input(cut_file), error);
}

TEST_CASE("selecting maps out of range names the tensor") {
  auto info = tensor_of({2, 3, 4, 4});
  auto nchw = parse_layout("NCHW");
  CHECK_THROWS_WITH_AS(select_maps(info, nchw, request_of(2, ":")),
                       "x.npy: --sample 2 is out of range: the tensor has 2 samples", error);
  CHECK_THROWS_WITH_AS(select_maps(info, nchw, request_of(-3, ":")),
                       "x.npy: --sample -3 is out of range: the tensor has 2 samples", error);
  CHECK_THROWS_WITH_AS(select_maps(info, nchw, request_of(0, "5:9")),
                       "x.npy: --channels 5:9 selects no channel: the tensor has 3 channels",
                       error);
  CHECK_THROWS_WITH_AS(select_maps(info, nchw, request_of(0, "-4")),
                       "x.npy: --channels -4 is out of range: the tensor has 3 channels", error);
  CHECK_THROWS_WITH_AS(select_maps(info, nchw, request_of(0, ":", 1)),
                       "x.npy: --depth applies to 3-D maps; layout NCHW has 2-D maps", error);
  CHECK_THROWS_WITH_AS(select_maps(info, parse_layout("NCDHW"), request_of(0, ":")),
                       "x.npy: layout NCDHW has 5 axes, the tensor (2, 3, 4, 4) has 4", error);
  CHECK_THROWS_AS(
      select_maps(tensor_of({1, 1, 2, 2, 2, 2}), parse_layout("NCABDE"), request_of(0, ":")),
      error);
}

// Decodes a PNG with libpng's simplified reader into RGB bytes.
std::vector<std::uint8_t> decode_png(const std::string& encoded, png_uint_32& width,
                                     png_uint_32& height) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  REQUIRE(png_image_begin_read_from_memory(&image, encoded.data(), encoded.size()));
  image.format = PNG_FORMAT_RGB;
  std::vector<std::uint8_t> pixels(PNG_IMAGE_SIZE(image));
  REQUIRE(png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr));
  width = image.width;
  height = image.height;
  return pixels;
}

TEST_CASE("PNG: rows encoded as they come decode to the same pixels") {
  std::string encoded;
  std::size_t writes = 0;
  const std::uint32_t width = 300;
  const std::uint32_t height = 200;
  auto pixel = [](std::uint32_t x, std::uint32_t y, std::uint32_t channel) {
    return static_cast<std::uint8_t>((x * 7 + y * 13 + channel * 101) % 256);
  };
  encode_png(
      "out.png", width, height,
      [&](std::uint32_t y, std::uint8_t* row) {
        for (std::uint32_t x = 0; x < width; ++x) {
          for (std::uint32_t c = 0; c < 3; ++c) row[3 * x + c] = pixel(x, y, c);
        }
      },
      [&](std::string_view bytes) {
        encoded += bytes;
        ++writes;
      });
  CHECK(writes > 1);
  png_uint_32 decoded_width = 0;
  png_uint_32 decoded_height = 0;
  auto pixels = decode_png(encoded, decoded_width, decoded_height);
  CHECK(decoded_width == width);
  CHECK(decoded_height == height);
  std::size_t wrong = 0;
  for (std::uint32_t y = 0; y < height; ++y) {
    for (std::uint32_t x = 0; x < width; ++x) {
      for (std::uint32_t c = 0; c < 3; ++c)
        wrong += pixels[(y * width + x) * 3 + c] != pixel(x, y, c);
    }
  }
  CHECK(wrong == 0);
}

TEST_CASE("PNG: a failing writer's error passes through") {
  CHECK_THROWS_WITH(encode_png(
                        "out.png", 4, 4, [](std::uint32_t, std::uint8_t* row) { row[0] = 1; },
                        [](std::string_view) { throw error("out.png", "disk full"); }),
                    "out.png: disk full");
}

TEST_CASE("terminal: half blocks in 24-bit colour, the colours set when they change") {
  // One 1x1 map upscaled to 1 pixel: a 3x3 grid, framed.
  std::vector<std::uint16_t> levels{255};
  auto grid = upscaled_grid(1, 1, 1, 1, 1);
  auto text = terminal_image(grid, levels, colormap::gray, terminal_colour::truecolour);
  const std::string frame = "\x1b[38;2;32;32;32m";
  const std::string frame_below = "\x1b[48;2;32;32;32m";
  const std::string block = "\u2580";
  std::string expected =
      // rows 0 and 1: frame over frame, frame over white, frame over frame
      frame + frame_below + block + "\x1b[48;2;255;255;255m" + block + frame_below + block +
      "\x1b[0m\n" +
      // row 2 alone: frame, no background set
      frame + block + block + block + "\x1b[0m\n";
  CHECK(text == expected);
}

TEST_CASE("terminal: the ASCII ramp, framed, tiles halved in height") {
  std::vector<std::uint16_t> levels{0, 128, 255, kNanLevel, 255, 25, 26, 230};
  auto grid = upscaled_grid(2, 2, 2, 2, 2);  // tiles of 2x2, no upscale
  auto text = terminal_image(grid, levels, colormap::viridis, terminal_colour::none);
  // Halved, each tile shows its first map row. Level l is ramp character
  // l * 10 / 256: 25 is the first, 26 the second.
  CHECK(text ==
        "+--+--+\n"
        "| o|@ |\n"
        "+--+--+\n");
  auto tall = upscaled_grid(2, 2, 2, 2, 4);  // tiles of 4x4, halved to 2 rows
  CHECK(terminal_image(tall, levels, colormap::gray, terminal_colour::none) ==
        "+----+----+\n"
        "|  oo|@@  |\n"
        "|@@??|..##|\n"
        "+----+----+\n");
}

}  // namespace
}  // namespace featpool
