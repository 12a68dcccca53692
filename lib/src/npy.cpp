// NPY, as numpy.lib.format writes it:
//
//   offset  size  field
//   0       6     magic "\x93NUMPY"
//   6       1     major version (1, 2 or 3)
//   7       1     minor version (0)
//   8       2|4   header length, little-endian: 2 bytes in 1.0, 4 in 2.0 and 3.0
//   10|12   len   header: a Python dict literal with exactly the keys 'descr',
//                 'fortran_order' and 'shape', padded with spaces and a '\n'
//                 (latin-1 in 1.0 and 2.0, UTF-8 in 3.0)
//   ...           the elements, item after item, in C or Fortran order
//
// Everything the header says is checked before it is acted on: the header
// length against numpy's limit, the rank, the shape product against
// overflow, and the bytes it promises against the bytes the file holds.

#include "featpool/npy.hpp"

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "python_literal.hpp"
#include <fmt/format.h>

#include "featpool/element.hpp"
#include "featpool/error.hpp"

namespace featpool {
namespace {

constexpr std::array<unsigned char, 6> kMagic{0x93, 'N', 'U', 'M', 'P', 'Y'};

// What a 'descr' string means for featpool.
struct npy_dtype {
  std::optional<dtype> type;  // numeric types only
  std::string name;           // numpy's name for numbers and complex, else the descr
  byte_order order = byte_order::none;
  std::uint64_t item_size = 0;
};

std::optional<npy_dtype> numeric_descr(char kind, std::uint64_t size) {
  struct known {
    char kind;
    std::uint64_t size;
    dtype type;
  };
  static constexpr std::array kKnown{
      known{'b', 1, dtype::bool_},   known{'i', 1, dtype::int8},    known{'i', 2, dtype::int16},
      known{'i', 4, dtype::int32},   known{'i', 8, dtype::int64},   known{'u', 1, dtype::uint8},
      known{'u', 2, dtype::uint16},  known{'u', 4, dtype::uint32},  known{'u', 8, dtype::uint64},
      known{'f', 2, dtype::float16}, known{'f', 4, dtype::float32}, known{'f', 8, dtype::float64},
  };
  for (const auto& k : kKnown) {
    if (k.kind == kind && k.size == size) {
      return npy_dtype{k.type, std::string(dtype_name(k.type)), byte_order::none, size};
    }
  }
  return std::nullopt;
}

// Interprets a dtype string such as "<f4", "|S8", "<U4", "|O" or "<M8[ns]".
// Returns nullopt with `reason` set for anything numpy would not write.
std::optional<npy_dtype> parse_descr(const std::string& descr, std::string& reason) {
  reason = fmt::format("unsupported dtype '{}'", descr);
  if (descr.size() < 2 || std::string_view("<>|=").find(descr[0]) == std::string_view::npos) {
    return std::nullopt;
  }
  char kind = descr[1];
  std::string_view rest = std::string_view(descr).substr(2);
  std::size_t digits = 0;
  std::uint64_t size = 0;
  while (digits < rest.size() && digits < 12 && rest[digits] >= '0' && rest[digits] <= '9') {
    size = size * 10 + static_cast<std::uint64_t>(rest[digits++] - '0');
  }
  std::string_view suffix = rest.substr(digits);
  bool bracketed_unit = suffix.size() >= 3 && suffix.front() == '[' && suffix.back() == ']';

  npy_dtype result;
  if (kind == 'O' && digits == 0 && suffix.empty()) {
    result.name = "object";
    result.item_size = 8;  // a pointer per element, as numpy counts nbytes
  } else if (digits == 0 || (!suffix.empty() && !bracketed_unit)) {
    return std::nullopt;
  } else if (auto numeric = numeric_descr(kind, size); numeric && suffix.empty()) {
    result = *numeric;
  } else if (kind == 'c' && (size == 8 || size == 16 || size == 32) && suffix.empty()) {
    result.name = fmt::format("complex{}", size * 8);
    result.item_size = size;
  } else if (kind == 'f' && (size == 12 || size == 16) && suffix.empty()) {
    result.name = fmt::format("float{}", size * 8);  // long double: listed, never pooled
    result.item_size = size;
  } else if ((kind == 'S' || kind == 'a' || kind == 'V') && suffix.empty()) {
    result.name = descr;
    result.item_size = size;
  } else if (kind == 'U' && suffix.empty()) {
    result.name = descr;
    result.item_size = size * 4;
  } else if ((kind == 'M' || kind == 'm') && size == 8) {
    result.name = descr;
    result.item_size = 8;
  } else {
    return std::nullopt;
  }
  if (result.item_size > 1 && descr[0] != '|') {
    result.order = descr[0] == '>'   ? byte_order::big
                   : descr[0] == '<' ? byte_order::little
                                     : native_byte_order();
  }
  if (result.type && result.item_size == 1) result.order = byte_order::none;
  return result;
}

std::uint64_t read_little_endian(const std::byte* bytes, std::size_t count) {
  std::uint64_t value = 0;
  for (std::size_t i = count; i-- > 0;)
    value = (value << 8) | std::to_integer<std::uint64_t>(bytes[i]);
  return value;
}

const detail::python_value* find_key(const detail::python_value& dict, std::string_view key) {
  for (std::size_t i = 0; i + 1 < dict.elements.size(); i += 2) {
    if (dict.elements[i].type == detail::python_value::kind::string &&
        dict.elements[i].text == key) {
      return &dict.elements[i + 1];
    }
  }
  return nullptr;
}

// Parses the item size of a structured descr's fields, which numpy needs to
// count nbytes. Fields are listed, not read, so an exact size is only
// needed for the inspect listing; unknown field formats give 0.
std::uint64_t structured_item_size(const detail::python_value& list) {
  std::uint64_t total = 0;
  for (const auto& field : list.elements) {
    if (field.type != detail::python_value::kind::tuple || field.elements.size() < 2) return 0;
    const auto& format = field.elements[1];
    std::uint64_t size = 0;
    if (format.type == detail::python_value::kind::string) {
      std::string reason;
      auto parsed = parse_descr(format.text, reason);
      if (!parsed) return 0;
      size = parsed->item_size;
    } else if (format.type == detail::python_value::kind::list) {
      size = structured_item_size(format);
    }
    if (field.elements.size() == 3) {
      const auto& sub = field.elements[2];
      if (sub.type == detail::python_value::kind::integer && sub.magnitude) {
        size *= *sub.magnitude;
      } else {
        for (const auto& dim : sub.elements) size *= dim.magnitude.value_or(0);
      }
    }
    total += size;
  }
  return total;
}

// Interprets a header's 'descr': a dtype string, or the text of a structured
// dtype's field list, which numpy shows as that description.
std::optional<npy_dtype> interpret_descr(const std::string& descr, std::string& reason) {
  if (!descr.starts_with("[")) return parse_descr(descr, reason);
  auto fields = detail::parse_python_literal(descr, reason);
  if (!fields || fields->type != detail::python_value::kind::list || fields->elements.empty()) {
    reason = "malformed header: 'descr' is not a dtype";
    return std::nullopt;
  }
  npy_dtype result;
  result.name = descr;
  result.item_size = structured_item_size(*fields);
  return result;
}

npy_header check_header_dict(std::string_view text, const std::string& file,
                             const std::string& tensor) {
  auto fail = [&](std::string reason) { return error(file, tensor, std::move(reason)); };
  std::string reason;
  auto dict = detail::parse_python_literal(text, reason);
  if (!dict) throw fail("malformed header: " + reason);
  if (dict->type != detail::python_value::kind::dict) throw fail("malformed header: not a dict");
  for (std::size_t i = 0; i < dict->elements.size(); i += 2) {
    const auto& key = dict->elements[i];
    if (key.type != detail::python_value::kind::string ||
        (key.text != "descr" && key.text != "fortran_order" && key.text != "shape")) {
      throw fail(fmt::format("malformed header: unexpected key {}", key.source));
    }
  }
  const auto* descr = find_key(*dict, "descr");
  const auto* fortran = find_key(*dict, "fortran_order");
  const auto* shape = find_key(*dict, "shape");
  if (!descr) throw fail("malformed header: no 'descr' key");
  if (!fortran) throw fail("malformed header: no 'fortran_order' key");
  if (!shape) throw fail("malformed header: no 'shape' key");

  npy_header result;
  if (descr->type == detail::python_value::kind::string) {
    result.descr = descr->text;
  } else if (descr->type == detail::python_value::kind::list) {
    result.descr = std::string(descr->source);
  } else {
    throw fail("malformed header: 'descr' is not a dtype");
  }
  if (!interpret_descr(result.descr, reason)) throw fail(reason);

  if (fortran->type != detail::python_value::kind::boolean) {
    throw fail("malformed header: 'fortran_order' is not True or False");
  }
  result.fortran_order = fortran->truth;

  if (shape->type != detail::python_value::kind::tuple) {
    throw fail("malformed header: 'shape' is not a tuple");
  }
  if (shape->elements.size() > kMaxRank) {
    throw fail(fmt::format("shape has {} dimensions, more than the {} numpy allows",
                           shape->elements.size(), kMaxRank));
  }
  for (const auto& dim : shape->elements) {
    if (dim.type != detail::python_value::kind::integer) {
      throw fail(fmt::format("malformed header: shape entry {} is not an integer", dim.source));
    }
    if (dim.negative && dim.magnitude != 0u) {
      throw fail(fmt::format("negative dimension {} in shape", dim.source));
    }
    if (!dim.magnitude) throw fail(fmt::format("dimension {} in shape is too large", dim.source));
    result.shape.push_back(*dim.magnitude);
  }
  return result;
}

// Multiplies the shape out, refusing products past 2^64 bytes.
std::uint64_t checked_nbytes(const std::vector<std::uint64_t>& shape, std::uint64_t item_size,
                             const std::string& file, const std::string& tensor) {
  std::uint64_t total = item_size;
  for (auto extent : shape) {
    if (__builtin_mul_overflow(total, extent, &total)) {
      throw error(file, tensor, "shape is too large: its size overflows 64 bits");
    }
  }
  return total;
}

class npy_block_reader final : public block_reader {
 public:
  npy_block_reader(std::unique_ptr<byte_stream> in, const tensor_info& info,
                   std::optional<raw_extent> raw)
      : in_(std::move(in)),
        raw_(raw),
        file_(info.file),
        tensor_(info.name),
        item_size_(dtype_size(*info.type)),
        remaining_(info.nbytes),
        total_(info.nbytes),
        swap_(info.stored_byte_order != byte_order::none &&
              info.stored_byte_order != native_byte_order()) {
    std::uint64_t block = std::min<std::uint64_t>(total_, kBlockBytes);
    capacity_ = static_cast<std::size_t>(block - block % item_size_);
    if (capacity_ == 0 && total_ > 0) capacity_ = item_size_;
    // Left uninitialised: every byte handed out was read into it first.
    buffer_ = std::make_unique_for_overwrite<std::byte[]>(capacity_);
  }

  std::span<const std::byte> next() override {
    if (remaining_ == 0) return {};
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, capacity_));
    std::size_t got = in_->read(std::span(buffer_.get(), want));
    if (got < want) {
      throw error(file_, tensor_,
                  fmt::format("truncated data: header says {} bytes, file has {}", total_,
                              total_ - remaining_ + got));
    }
    remaining_ -= got;
    if (swap_) swap_byte_order(std::span(buffer_.get(), got), item_size_);
    return std::span(buffer_.get(), got);
  }

  std::optional<raw_extent> raw() const override { return raw_; }

 private:
  std::unique_ptr<byte_stream> in_;
  std::optional<raw_extent> raw_;
  std::string file_;
  std::string tensor_;
  std::size_t item_size_;
  std::uint64_t remaining_;
  std::uint64_t total_;
  bool swap_;
  std::size_t capacity_ = 0;
  std::unique_ptr<std::byte[]> buffer_;
};

class npy_file_source final : public tensor_source {
 public:
  // `opened`, when given, is the file at offset 0: listing and a first read
  // then share one open file, which matters for batches of many small ones.
  npy_file_source(std::string path, std::unique_ptr<fd_stream> opened)
      : path_(std::move(path)), at_data_(opened ? std::move(opened) : open_stream()) {
    auto header = read_npy_header(*at_data_, path_, "");
    infos_.push_back(describe_npy(header, path_, std::filesystem::path(path_).stem().string(),
                                  file_format::npy, at_data_->size()));
  }

  const std::vector<tensor_info>& tensors() const override { return infos_; }

  std::unique_ptr<block_reader> open(std::size_t index) override {
    const auto& info = infos_.at(index);
    auto in = std::move(at_data_);
    if (!in) {
      // Reading the header again leaves the stream at the data and notices
      // a file that changed since it was listed.
      in = open_stream();
      read_npy_header(*in, path_, "");
    }
    std::optional<raw_extent> raw;
    if (in->size()) {  // a regular file: its data can be read in place
      raw = raw_extent{in->fd(), in->offset(),
                       info.stored_byte_order != byte_order::none &&
                           info.stored_byte_order != native_byte_order()};
    }
    return make_npy_reader(std::move(in), info, raw);
  }

 private:
  std::unique_ptr<fd_stream> open_stream() {
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw error(path_, std::strerror(errno));
    return std::make_unique<fd_stream>(fd, path_, true);
  }

  std::string path_;
  std::unique_ptr<fd_stream> at_data_;  // right after the header, until first read
  std::vector<tensor_info> infos_;
};

class npy_stream_source final : public tensor_source {
 public:
  npy_stream_source(std::unique_ptr<byte_stream> in, std::string file, std::string name)
      : in_(std::move(in)) {
    auto header = read_npy_header(*in_, file, name);
    infos_.push_back(
        describe_npy(header, std::move(file), std::move(name), file_format::npy, std::nullopt));
  }

  const std::vector<tensor_info>& tensors() const override { return infos_; }

  std::unique_ptr<block_reader> open(std::size_t index) override {
    if (!in_) throw error(infos_.at(index).file, "a stream can be read only once");
    return make_npy_reader(std::move(in_), infos_.at(index));
  }

 private:
  std::unique_ptr<byte_stream> in_;
  std::vector<tensor_info> infos_;
};

}  // namespace

npy_header read_npy_header(byte_stream& in, const std::string& file, const std::string& tensor) {
  // Magic, version and a version 1 length in one read; version 2 and 3
  // lengths take two more bytes.
  std::array<std::byte, 12> prefix{};
  std::size_t got = in.read(std::span(prefix.data(), 10));
  if (got == 0) throw error(file, tensor, "empty file");
  if (got < kMagic.size() || std::memcmp(prefix.data(), kMagic.data(), kMagic.size()) != 0) {
    throw error(file, tensor, "not an NPY file (bad magic)");
  }
  if (got < 8) throw error(file, tensor, "truncated header: the version is cut off");
  npy_header header;
  header.major_version = std::to_integer<int>(prefix[6]);
  header.minor_version = std::to_integer<int>(prefix[7]);
  if (header.major_version < 1 || header.major_version > 3 || header.minor_version != 0) {
    throw error(file, tensor,
                fmt::format("unsupported NPY format version {}.{}", header.major_version,
                            header.minor_version));
  }
  std::size_t length_bytes = header.major_version == 1 ? 2 : 4;
  if (length_bytes == 4 && got == 10) got += in.read(std::span(prefix.data() + 10, 2));
  if (got < 8 + length_bytes) throw error(file, tensor, "truncated header: the length is cut off");
  std::uint64_t header_length = read_little_endian(prefix.data() + 8, length_bytes);
  if (header_length > kMaxNpyHeaderBytes) {
    throw error(file, tensor,
                fmt::format("header is {} bytes, over numpy's limit of {}", header_length,
                            kMaxNpyHeaderBytes));
  }
  std::string text(header_length, '\0');
  got = in.read(std::as_writable_bytes(std::span(text)));
  if (got < header_length) {
    throw error(
        file, tensor,
        fmt::format("truncated header: expected {} bytes, file has {}", header_length, got));
  }
  auto checked = check_header_dict(text, file, tensor);
  checked.major_version = header.major_version;
  checked.minor_version = header.minor_version;
  checked.data_offset = 8 + length_bytes + header_length;
  return checked;
}

tensor_info describe_npy(const npy_header& header, std::string file, std::string name,
                         file_format format, std::optional<std::uint64_t> stream_size) {
  // An NPY file holds one unnamed array: messages name the file alone.
  const std::string in_messages = format == file_format::npy ? std::string() : name;
  std::string reason;
  auto parsed = interpret_descr(header.descr, reason);
  if (!parsed) throw error(file, in_messages, reason);
  const npy_dtype& type = *parsed;
  tensor_info info;
  info.nbytes = checked_nbytes(header.shape, type.item_size, file, in_messages);
  info.file = std::move(file);
  info.name = std::move(name);
  info.format = format;
  info.shape = header.shape;
  info.type = type.type;
  info.dtype_string = type.name;
  info.stored_byte_order = type.order;
  info.order = header.fortran_order ? memory_order::fortran : memory_order::c;
  // Object arrays are pickled, so their byte count says nothing about the
  // file; every other dtype must be there in full.
  if (stream_size && type.name != "object") {
    std::uint64_t present =
        *stream_size > header.data_offset ? *stream_size - header.data_offset : 0;
    if (present < info.nbytes) {
      throw error(
          info.file, in_messages,
          fmt::format("truncated data: header says {} bytes, file has {}", info.nbytes, present));
    }
  }
  return info;
}

std::unique_ptr<block_reader> make_npy_reader(std::unique_ptr<byte_stream> in,
                                              const tensor_info& info,
                                              std::optional<raw_extent> raw) {
  if (!info.numeric()) {
    throw error(info.file, info.name,
                fmt::format("dtype {} is not numeric: its data cannot be read", info.dtype_string));
  }
  return std::make_unique<npy_block_reader>(std::move(in), info, raw);
}

std::unique_ptr<tensor_source> open_npy_file(const std::string& path) {
  return std::make_unique<npy_file_source>(path, nullptr);
}

std::unique_ptr<tensor_source> open_npy_file(std::unique_ptr<fd_stream> opened,
                                             const std::string& path) {
  return std::make_unique<npy_file_source>(path, std::move(opened));
}

std::unique_ptr<tensor_source> open_npy_stream(std::unique_ptr<byte_stream> in, std::string file,
                                               std::string name) {
  return std::make_unique<npy_stream_source>(std::move(in), std::move(file), std::move(name));
}

std::string npy_header_bytes(dtype type, const std::vector<std::uint64_t>& shape) {
  std::string shape_text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    shape_text += fmt::format("{}{}", i ? ", " : "", shape[i]);
  }
  if (shape.size() == 1) shape_text += ",";
  shape_text += ")";
  std::size_t size = dtype_size(type);
  char order = size == 1 ? '|' : (native_byte_order() == byte_order::little ? '<' : '>');
  static constexpr std::array<std::string_view, 12> kCodes{"b1", "i1", "i2", "i4", "i8", "u1",
                                                           "u2", "u4", "u8", "f2", "f4", "f8"};
  std::string dict = fmt::format("{{'descr': '{}{}', 'fortran_order': False, 'shape': {}, }}",
                                 order, kCodes[static_cast<std::size_t>(type)], shape_text);
  // numpy pads so that magic + length field + header is a multiple of 64,
  // and switches to version 2.0 only when the header outgrows 2 bytes.
  int version = dict.size() + 1 + 10 > 65535 ? 2 : 1;
  std::size_t prefix = version == 1 ? 10 : 12;
  std::size_t padded = (prefix + dict.size() + 1 + 63) / 64 * 64;
  dict.append(padded - prefix - dict.size() - 1, ' ');
  dict += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(version);
  out += '\0';
  std::size_t length = dict.size();
  for (std::size_t i = 0; i < prefix - 8; ++i) out += static_cast<char>((length >> (8 * i)) & 0xff);
  return out + dict;
}

}  // namespace featpool
