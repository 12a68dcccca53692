#include "h5_types.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "h5_text.hpp"
#include <fmt/format.h>

namespace featpool::detail {
namespace {

// h5py's names for the members of its bool enum and its complex compounds.
constexpr std::string_view kFalseName = "FALSE";
constexpr std::string_view kTrueName = "TRUE";
constexpr std::string_view kRealName = "r";
constexpr std::string_view kImaginaryName = "i";
// h5py stores numpy dtypes HDF5 has no type for as opaque data with this tag.
constexpr std::string_view kNumpyTag = "NUMPY:";
// numpy counts a Python object reference (strings, references, sequences)
// as one pointer.
constexpr std::uint64_t kObjectItemSize = 8;

// A type as numpy sees it: the public description plus numpy's short
// construction repr ('<i4', '?', 'S3', 'O', a nested structure), which is how
// the type is spelled inside a structured or subarray dtype's description.
struct numpy_type {
  h5_type_description description;
  std::string repr;
  // For subarray types, the base's repr and the shape: a structured dtype
  // lists such a field as ('name', base, shape).
  std::string subarray_base;
  std::string subarray_shape;
};

// A string HDF5 allocated for us (member names, tags), freed on scope exit.
class h5_string {
 public:
  explicit h5_string(char* text) : text_(text) {}
  h5_string(const h5_string&) = delete;
  h5_string& operator=(const h5_string&) = delete;
  ~h5_string() {
    if (text_) H5free_memory(text_);
  }
  std::string_view view() const { return text_ ? std::string_view(text_) : std::string_view(); }
  explicit operator bool() const { return text_ != nullptr; }

 private:
  char* text_;
};

byte_order order_of(hid_t type, const h5_context& where) {
  switch (H5Tget_order(type)) {
    case H5T_ORDER_LE:
      return byte_order::little;
    case H5T_ORDER_BE:
      return byte_order::big;
    case H5T_ORDER_ERROR:
      where.fail_from_stack("cannot read a datatype's byte order");
    default:
      return byte_order::none;
  }
}

char order_char(byte_order order) {
  switch (order) {
    case byte_order::little:
      return '<';
    case byte_order::big:
      return '>';
    case byte_order::none:
      break;
  }
  return '|';
}

numpy_type numeric(dtype type, byte_order order) {
  numpy_type result;
  std::size_t size = dtype_size(type);
  result.description.type = type;
  result.description.name = std::string(dtype_name(type));
  result.description.item_size = size;
  result.description.order = size == 1 ? byte_order::none : order;
  char kind = 'i';
  if (type == dtype::float16 || type == dtype::float32 || type == dtype::float64) kind = 'f';
  if (type == dtype::uint8 || type == dtype::uint16 || type == dtype::uint32 ||
      type == dtype::uint64) {
    kind = 'u';
  }
  if (type == dtype::bool_) {
    result.repr = "'?'";
  } else if (size == 1) {
    result.repr = fmt::format("'{}1'", kind);
  } else {
    result.repr = fmt::format("'{}{}{}'", order_char(order), kind, size);
  }
  return result;
}

// Anything numpy has no type for: raw bytes, as numpy's void dtype.
numpy_type raw_bytes(std::size_t size) {
  numpy_type result;
  result.description.name = fmt::format("|V{}", size);
  result.description.item_size = size;
  result.repr = fmt::format("'V{}'", size);
  return result;
}

numpy_type python_object() {
  numpy_type result;
  result.description.name = "object";
  result.description.item_size = kObjectItemSize;
  result.repr = "'O'";
  return result;
}

std::optional<dtype> integer_of_size(std::size_t size, bool is_signed) {
  switch (size) {
    case 1:
      return is_signed ? dtype::int8 : dtype::uint8;
    case 2:
      return is_signed ? dtype::int16 : dtype::uint16;
    case 4:
      return is_signed ? dtype::int32 : dtype::uint32;
    case 8:
      return is_signed ? dtype::int64 : dtype::uint64;
    default:
      return std::nullopt;
  }
}

std::size_t type_size(hid_t type, const h5_context& where) {
  std::size_t size = H5Tget_size(type);
  if (size == 0) where.fail_from_stack("cannot read a datatype's size");
  return size;
}

bool is_signed(hid_t type, const h5_context& where) {
  H5T_sign_t sign = H5Tget_sign(type);
  if (sign == H5T_SGN_ERROR) where.fail_from_stack("cannot read an integer type's sign");
  return sign == H5T_SGN_2;
}

int member_count(hid_t type, const h5_context& where) {
  return where.check(H5Tget_nmembers(type), "cannot count a datatype's members");
}

std::string member_name(hid_t type, int index, const h5_context& where) {
  h5_string name(H5Tget_member_name(type, static_cast<unsigned>(index)));
  if (!name) where.fail_from_stack("cannot read a member's name");
  return std::string(name.view());
}

// h5py's bool: an enum whose members are exactly FALSE = 0 and TRUE = 1,
// whatever its base type (h5py itself writes an int8 base).
bool is_h5py_bool(hid_t type, const h5_context& where) {
  if (member_count(type, where) != 2) return false;
  auto base = where.own(H5Tget_super(type), "cannot read an enum's base type");
  std::size_t size = type_size(base.get(), where);
  bool seen_false = false;
  bool seen_true = false;
  for (int i = 0; i < 2; ++i) {
    std::string name = member_name(type, i, where);
    // The value comes in the base type's representation: convert it, as
    // h5py does, to a native long long.
    std::vector<unsigned char> value(std::max<std::size_t>(size, sizeof(long long)));
    where.check(H5Tget_member_value(type, static_cast<unsigned>(i), value.data()),
                "cannot read an enum member's value");
    where.check(H5Tconvert(base.get(), H5T_NATIVE_LLONG, 1, value.data(), nullptr, H5P_DEFAULT),
                "cannot convert an enum member's value");
    long long number = 0;
    std::memcpy(&number, value.data(), sizeof number);
    if (name == kFalseName && number == 0) seen_false = true;
    if (name == kTrueName && number == 1) seen_true = true;
  }
  return seen_false && seen_true;
}

numpy_type describe(hid_t type, const h5_context& where);

// h5py's complex: two members named r and i of the same float type.
std::optional<numpy_type> as_complex(hid_t type, const h5_context& where) {
  if (member_count(type, where) != 2) return std::nullopt;
  if (member_name(type, 0, where) != kRealName || member_name(type, 1, where) != kImaginaryName) {
    return std::nullopt;
  }
  auto real = where.own(H5Tget_member_type(type, 0), "cannot read a member's type");
  auto imaginary = where.own(H5Tget_member_type(type, 1), "cannot read a member's type");
  if (H5Tget_class(real.get()) != H5T_FLOAT || H5Tget_class(imaginary.get()) != H5T_FLOAT) {
    return std::nullopt;
  }
  std::size_t size = type_size(real.get(), where);
  byte_order order = order_of(real.get(), where);
  if (type_size(imaginary.get(), where) != size || order_of(imaginary.get(), where) != order ||
      (size != 4 && size != 8 && size != 16)) {
    return std::nullopt;
  }
  numpy_type result;
  result.description.name = fmt::format("complex{}", size * 16);
  result.description.item_size = size * 2;
  result.description.order = order;
  result.repr = fmt::format("'{}c{}'", order_char(order), size * 2);
  return result;
}

// numpy's str() of a structured dtype: the list form when the fields are
// packed in order, else the dict form with offsets and itemsize.
numpy_type structured(hid_t type, const h5_context& where) {
  int count = member_count(type, where);
  std::size_t size = type_size(type, where);
  std::vector<std::string> names;
  std::vector<numpy_type> fields;
  std::vector<std::size_t> offsets;
  bool packed = true;
  std::uint64_t running = 0;
  for (int i = 0; i < count; ++i) {
    names.push_back(python_repr(member_name(type, i, where)));
    auto member = where.own(H5Tget_member_type(type, static_cast<unsigned>(i)),
                            "cannot read a member's type");
    fields.push_back(describe(member.get(), where));
    offsets.push_back(H5Tget_member_offset(type, static_cast<unsigned>(i)));
    if (offsets.back() != running) packed = false;
    running += fields.back().description.item_size;
  }
  if (running != size) packed = false;

  std::string text;
  if (packed) {
    std::vector<std::string> items;
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const auto& field = fields[i];
      items.push_back(
          field.subarray_base.empty()
              ? fmt::format("({}, {})", names[i], field.repr)
              : fmt::format("({}, {}, {})", names[i], field.subarray_base, field.subarray_shape));
    }
    text = fmt::format("[{}]", fmt::join(items, ", "));
  } else {
    std::vector<std::string> formats;
    for (const auto& field : fields) formats.push_back(field.repr);
    text = fmt::format("{{'names': [{}], 'formats': [{}], 'offsets': [{}], 'itemsize': {}}}",
                       fmt::join(names, ", "), fmt::join(formats, ", "), fmt::join(offsets, ", "),
                       size);
  }
  numpy_type result;
  result.description.name = text;
  result.description.item_size = size;
  result.repr = text;
  return result;
}

// numpy's subarray dtype, e.g. ('<f4', (2, 3)). numpy merges nested
// subarrays into one, outer dimensions first.
numpy_type subarray(hid_t type, const h5_context& where) {
  std::vector<std::uint64_t> shape;
  h5_handle current;
  hid_t array = type;
  while (H5Tget_class(array) == H5T_ARRAY) {
    int rank = where.check(H5Tget_array_ndims(array), "cannot read an array type's rank");
    std::array<hsize_t, H5S_MAX_RANK> dims{};
    if (rank > H5S_MAX_RANK) where.fail("array type has too many dimensions");
    where.check(H5Tget_array_dims2(array, dims.data()), "cannot read an array type's dimensions");
    shape.insert(shape.end(), dims.begin(), dims.begin() + rank);
    current = where.own(H5Tget_super(array), "cannot read an array type's base");
    array = current.get();
  }
  numpy_type base = describe(array, where);
  std::uint64_t item_size = base.description.item_size;
  for (auto extent : shape) {
    if (__builtin_mul_overflow(item_size, extent, &item_size)) {
      where.fail("array type is too large: its size overflows 64 bits");
    }
  }
  numpy_type result;
  result.subarray_base = base.repr;
  result.subarray_shape = python_shape(shape);
  result.description.name = fmt::format("({}, {})", base.repr, result.subarray_shape);
  result.description.item_size = item_size;
  result.repr = result.description.name;
  return result;
}

numpy_type opaque(hid_t type, std::size_t size) {
  h5_string tag(H5Tget_tag(type));
  if (tag && tag.view().starts_with(kNumpyTag) && tag.view().size() > kNumpyTag.size()) {
    // h5py's opaque_dtype(): the tag records numpy's dtype string.
    numpy_type result;
    result.description.name = valid_utf8(tag.view().substr(kNumpyTag.size()));
    result.description.item_size = size;
    result.repr = fmt::format("'{}'", result.description.name);
    return result;
  }
  return raw_bytes(size);
}

numpy_type describe(hid_t type, const h5_context& where) {
  H5T_class_t type_class = H5Tget_class(type);
  if (type_class == H5T_NO_CLASS) where.fail_from_stack("cannot read a datatype's class");
  std::size_t size = type_size(type, where);
  switch (type_class) {
    case H5T_INTEGER:
      if (auto integer = integer_of_size(size, is_signed(type, where))) {
        return numeric(*integer, order_of(type, where));
      }
      return raw_bytes(size);
    case H5T_FLOAT:
      if (size == 2) return numeric(dtype::float16, order_of(type, where));
      if (size == 4) return numeric(dtype::float32, order_of(type, where));
      if (size == 8) return numeric(dtype::float64, order_of(type, where));
      if (size == 12 || size == 16) {
        // x87 long double: numpy names it by its storage size.
        numpy_type result;
        result.description.name = fmt::format("float{}", size * 8);
        result.description.item_size = size;
        result.description.order = order_of(type, where);
        result.repr = fmt::format("'{}f{}'", order_char(result.description.order), size);
        return result;
      }
      return raw_bytes(size);
    case H5T_BITFIELD:
      if (auto integer = integer_of_size(size, false)) {
        return numeric(*integer, order_of(type, where));
      }
      return raw_bytes(size);
    case H5T_ENUM: {
      if (is_h5py_bool(type, where)) return numeric(dtype::bool_, byte_order::none);
      auto base = where.own(H5Tget_super(type), "cannot read an enum's base type");
      return describe(base.get(), where);
    }
    case H5T_COMPOUND:
      if (auto complex = as_complex(type, where)) return *complex;
      return structured(type, where);
    case H5T_STRING: {
      htri_t variable = where.check(H5Tis_variable_str(type), "cannot read a string type");
      if (variable > 0) return python_object();
      numpy_type result;
      result.description.name = fmt::format("|S{}", size);
      result.description.item_size = size;
      result.repr = fmt::format("'S{}'", size);
      return result;
    }
    case H5T_OPAQUE:
      return opaque(type, size);
    case H5T_REFERENCE:
    case H5T_VLEN:
      return python_object();
    case H5T_ARRAY:
      return subarray(type, where);
    default:
      return raw_bytes(size);
  }
}

H5T_order_t native_order() {
  return native_byte_order() == byte_order::little ? H5T_ORDER_LE : H5T_ORDER_BE;
}

}  // namespace

hid_t native_integer(dtype type) {
  switch (type) {
    case dtype::int8:
      return H5T_NATIVE_INT8;
    case dtype::int16:
      return H5T_NATIVE_INT16;
    case dtype::int32:
      return H5T_NATIVE_INT32;
    case dtype::int64:
      return H5T_NATIVE_INT64;
    case dtype::uint8:
      return H5T_NATIVE_UINT8;
    case dtype::uint16:
      return H5T_NATIVE_UINT16;
    case dtype::uint32:
      return H5T_NATIVE_UINT32;
    default:
      return H5T_NATIVE_UINT64;
  }
}

h5_type_description describe_h5_type(hid_t type_id, const h5_context& where) {
  return describe(type_id, where).description;
}

std::optional<bool> stored_swapped(hid_t file_type, hid_t memory_type, const h5_context& where) {
  H5T_class_t type_class = H5Tget_class(file_type);
  if (type_class != H5T_INTEGER && type_class != H5T_FLOAT) return std::nullopt;
  if (H5Tget_class(memory_type) != type_class) return std::nullopt;
  std::size_t size = type_size(file_type, where);
  if (size != type_size(memory_type, where)) return std::nullopt;
  H5T_order_t order = H5Tget_order(file_type);
  if (order != H5T_ORDER_LE && order != H5T_ORDER_BE) return std::nullopt;
  // Equal once in native order: same precision, offset, padding, sign and,
  // for floats, the same fields and bias.
  auto native = where.own(H5Tcopy(file_type), "cannot copy a datatype");
  where.check(H5Tset_order(native.get(), native_order()), "cannot set a datatype's order");
  if (where.check(H5Tequal(native.get(), memory_type), "cannot compare datatypes") == 0) {
    return std::nullopt;
  }
  return size > 1 && order != native_order();
}

h5_handle memory_type_for(hid_t file_type, dtype type, const h5_context& where) {
  switch (type) {
    case dtype::bool_: {
      // h5py's bool type over a native int8. HDF5 converts enums by member
      // name, so a FALSE/TRUE enum of any base reads into it; h5py's own
      // type compares equal and its bytes come through untouched.
      auto memory = where.own(H5Tenum_create(H5T_NATIVE_INT8), "cannot create the bool type");
      signed char value = 0;
      where.check(H5Tenum_insert(memory.get(), kFalseName.data(), &value),
                  "cannot create the bool type");
      value = 1;
      where.check(H5Tenum_insert(memory.get(), kTrueName.data(), &value),
                  "cannot create the bool type");
      return memory;
    }
    case dtype::float16: {
      // numpy's float16 is IEEE binary16, made as h5py makes it from the
      // 32-bit type. A file's IEEE half (either byte order) converts to it
      // bit for bit; another 16-bit float layout converts by value.
      auto memory = where.own(H5Tcopy(H5T_IEEE_F32LE), "cannot create the float16 type");
      where.check(H5Tset_fields(memory.get(), 15, 10, 5, 0, 10), "cannot create the float16 type");
      where.check(H5Tset_size(memory.get(), 2), "cannot create the float16 type");
      where.check(H5Tset_ebias(memory.get(), 15), "cannot create the float16 type");
      where.check(H5Tset_order(memory.get(), native_order()), "cannot create the float16 type");
      return memory;
    }
    case dtype::float32:
      return where.own(H5Tcopy(H5T_NATIVE_FLOAT), "cannot create the float32 type");
    case dtype::float64:
      return where.own(H5Tcopy(H5T_NATIVE_DOUBLE), "cannot create the float64 type");
    default:
      break;
  }
  if (H5Tget_class(file_type) == H5T_BITFIELD) {
    // HDF5 converts bitfields only to bitfields: keep the layout, swap the
    // bytes to native order.
    auto memory = where.own(H5Tcopy(file_type), "cannot copy a bitfield type");
    where.check(H5Tset_order(memory.get(), native_order()), "cannot set a bitfield's order");
    return memory;
  }
  // Integers, and enums through HDF5's enum-to-integer conversion.
  return where.own(H5Tcopy(native_integer(type)), "cannot create an integer type");
}

}  // namespace featpool::detail
