#pragma once
// 8-bit RGB PNG encoding through libpng, a row at a time, so that an image
// of any size costs a row of memory.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace featpool {

// The PNG format's limit on either side.
inline constexpr std::uint64_t kPngMaxSide = 0x7fffffff;

// Encodes a width × height image: fill_row(y, rgb) fills row y's 3·width
// bytes; the encoded bytes are handed to `write` as they are made. Throws
// featpool::error naming `target` with libpng's reason if encoding fails;
// exceptions of fill_row and write pass through.
void encode_png(const std::string& target, std::uint32_t width, std::uint32_t height,
                const std::function<void(std::uint32_t, std::uint8_t*)>& fill_row,
                const std::function<void(std::string_view)>& write);

}  // namespace featpool
