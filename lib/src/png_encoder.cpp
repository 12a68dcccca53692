#include "featpool/png_encoder.hpp"

#include <png.h>

#include <cstring>
#include <string>
#include <vector>

#include "featpool/error.hpp"

namespace featpool {
namespace {

// What libpng's callbacks share with encode_png. libpng is C: its errors
// come back by longjmp, and no C++ exception may cross its frames, so the
// callbacks only record what happened.
struct encoder_state {
  std::string pending;  // encoded bytes not yet handed on
  char message[256] = "";
};

void on_error(png_structp png, png_const_charp message) {
  auto* state = static_cast<encoder_state*>(png_get_error_ptr(png));
  std::strncpy(state->message, message, sizeof state->message - 1);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}

void on_write(png_structp png, png_bytep data, png_size_t length) {
  auto* state = static_cast<encoder_state*>(png_get_io_ptr(png));
  try {
    state->pending.append(reinterpret_cast<const char*>(data), length);
  } catch (...) {
    png_error(png, "out of memory for the encoded image");
  }
}

void on_flush(png_structp) {}

// The libpng calls, in a frame that holds no C++ object, since a longjmp
// out of libpng lands here. Returns false when libpng failed.
bool encode_rows(png_structp png, png_infop info, std::uint32_t width, std::uint32_t height,
                 std::uint8_t* row,
                 const std::function<void(std::uint32_t, std::uint8_t*)>& fill_row,
                 const std::function<void()>& hand_on) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (std::uint32_t y = 0; y < height; ++y) {
    fill_row(y, row);
    png_write_row(png, row);
    hand_on();
  }
  png_write_end(png, info);
  hand_on();
  return true;
}

}  // namespace

void encode_png(const std::string& target, std::uint32_t width, std::uint32_t height,
                const std::function<void(std::uint32_t, std::uint8_t*)>& fill_row,
                const std::function<void(std::string_view)>& write) {
  encoder_state state;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &state, on_error, on_warning);
  if (!png) throw error(target, "libpng could not start");
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    throw error(target, "libpng could not start");
  }
  png_set_write_fn(png, &state, on_write, on_flush);
  std::vector<std::uint8_t> row(std::size_t{3} * width);
  auto hand_on = [&] {
    if (state.pending.empty()) return;
    write(state.pending);
    state.pending.clear();
  };
  bool encoded = false;
  try {
    encoded = encode_rows(png, info, width, height, row.data(), fill_row, hand_on);
  } catch (...) {
    png_destroy_write_struct(&png, &info);
    throw;
  }
  png_destroy_write_struct(&png, &info);
  if (!encoded) throw error(target, std::string("PNG encoding failed: ") + state.message);
}

}  // namespace featpool
