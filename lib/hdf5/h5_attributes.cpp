#include "h5_attributes.hpp"

#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "h5_text.hpp"
#include "h5_types.hpp"
#include <fmt/format.h>

namespace featpool::detail {
namespace {

herr_t collect_name(hid_t, const char* name, const H5A_info_t*, void* data) {
  // No exception may cross HDF5's C frames: report failure as -1 instead.
  try {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  } catch (...) {
    return -1;
  }
}

// Rebuilds the attribute's shape around its elements, in C order.
nlohmann::json nest(const std::vector<nlohmann::json>& values,
                    const std::vector<std::uint64_t>& shape, std::size_t axis, std::size_t& next) {
  if (axis == shape.size()) return values[next++];
  nlohmann::json array = nlohmann::json::array();
  for (std::uint64_t i = 0; i < shape[axis]; ++i)
    array.push_back(nest(values, shape, axis + 1, next));
  return array;
}

template <class T>
T load(const std::byte* bytes) {
  T value;
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

std::vector<nlohmann::json> read_numbers(hid_t attribute, hid_t file_type, dtype type,
                                         std::size_t count, const h5_context& where) {
  std::vector<nlohmann::json> values;
  values.reserve(count);
  if (type == dtype::float16 || type == dtype::float32 || type == dtype::float64) {
    std::vector<double> numbers(count);
    where.check(H5Aread(attribute, H5T_NATIVE_DOUBLE, numbers.data()), "cannot read an attribute");
    for (double number : numbers) values.emplace_back(number);
    return values;
  }
  auto memory = memory_type_for(file_type, type, where);
  std::size_t size = dtype_size(type);
  std::vector<std::byte> raw(count * size);
  where.check(H5Aread(attribute, memory.get(), raw.data()), "cannot read an attribute");
  for (std::size_t i = 0; i < count; ++i) {
    const std::byte* p = raw.data() + i * size;
    switch (type) {
      case dtype::bool_:
        values.emplace_back(load<std::int8_t>(p) != 0);
        break;
      case dtype::int8:
        values.emplace_back(load<std::int8_t>(p));
        break;
      case dtype::int16:
        values.emplace_back(load<std::int16_t>(p));
        break;
      case dtype::int32:
        values.emplace_back(load<std::int32_t>(p));
        break;
      case dtype::int64:
        values.emplace_back(load<std::int64_t>(p));
        break;
      case dtype::uint8:
        values.emplace_back(load<std::uint8_t>(p));
        break;
      case dtype::uint16:
        values.emplace_back(load<std::uint16_t>(p));
        break;
      case dtype::uint32:
        values.emplace_back(load<std::uint32_t>(p));
        break;
      default:
        values.emplace_back(load<std::uint64_t>(p));
        break;
    }
  }
  return values;
}

// Frees the strings HDF5 allocated for a variable-length read.
class vlen_strings {
 public:
  vlen_strings(hid_t type, hid_t space, std::size_t count)
      : type_(type), space_(space), pointers_(count, nullptr) {}
  vlen_strings(const vlen_strings&) = delete;
  vlen_strings& operator=(const vlen_strings&) = delete;
  ~vlen_strings() {
    h5_lock lock;
    H5Dvlen_reclaim(type_, space_, H5P_DEFAULT, pointers_.data());
  }
  char** data() { return pointers_.data(); }
  const std::vector<char*>& pointers() const { return pointers_; }

 private:
  hid_t type_;
  hid_t space_;
  std::vector<char*> pointers_;
};

std::vector<nlohmann::json> read_strings(hid_t attribute, hid_t file_type, hid_t space,
                                         std::size_t count, const h5_context& where) {
  std::vector<nlohmann::json> values;
  values.reserve(count);
  htri_t variable = where.check(H5Tis_variable_str(file_type), "cannot read a string type");
  if (variable > 0) {
    auto memory = where.own(H5Tcopy(H5T_C_S1), "cannot create a string type");
    where.check(H5Tset_size(memory.get(), H5T_VARIABLE), "cannot create a string type");
    H5T_cset_t cset = H5Tget_cset(file_type);
    if (cset == H5T_CSET_ERROR) where.fail_from_stack("cannot read a string type");
    where.check(H5Tset_cset(memory.get(), cset), "cannot create a string type");
    vlen_strings strings(memory.get(), space, count);
    where.check(H5Aread(attribute, memory.get(), strings.data()), "cannot read an attribute");
    for (const char* text : strings.pointers()) {
      values.emplace_back(valid_utf8(text ? std::string_view(text) : std::string_view()));
    }
    return values;
  }
  std::size_t size = H5Tget_size(file_type);
  if (size == 0) where.fail_from_stack("cannot read a string type's size");
  H5T_str_t pad = H5Tget_strpad(file_type);
  std::vector<char> raw(count * size);
  where.check(H5Aread(attribute, file_type, raw.data()), "cannot read an attribute");
  for (std::size_t i = 0; i < count; ++i) {
    std::string_view text(raw.data() + i * size, size);
    // As h5py shows them: up to the first NUL, trailing spaces dropped from
    // space-padded strings.
    text = text.substr(0, text.find('\0'));
    if (pad == H5T_STR_SPACEPAD) text = text.substr(0, text.find_last_not_of(' ') + 1);
    values.emplace_back(valid_utf8(text));
  }
  return values;
}

nlohmann::json attribute_value(hid_t attribute, const h5_context& where) {
  auto space = where.own(H5Aget_space(attribute), "cannot read an attribute's dataspace");
  auto type = where.own(H5Aget_type(attribute), "cannot read an attribute's datatype");
  H5S_class_t space_class = H5Sget_simple_extent_type(space.get());
  if (space_class == H5S_NO_CLASS) where.fail_from_stack("cannot read an attribute's dataspace");
  if (space_class == H5S_NULL) return nullptr;  // h5py's Empty
  int rank =
      where.check(H5Sget_simple_extent_ndims(space.get()), "cannot read an attribute's rank");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  where.check(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr),
              "cannot read an attribute's shape");
  std::vector<std::uint64_t> shape(dims.begin(), dims.end());

  auto description = describe_h5_type(type.get(), where);
  std::string summary = fmt::format("dtype {}, shape {}", description.name, python_shape(shape));
  std::uint64_t count = 1;
  std::uint64_t bytes = description.item_size;
  for (auto extent : shape) {
    if (__builtin_mul_overflow(count, extent, &count) ||
        __builtin_mul_overflow(bytes, extent, &bytes)) {
      return summary;
    }
  }
  if (bytes > kMaxAttributeBytes) return summary;

  bool is_string = !description.type && H5Tget_class(type.get()) == H5T_STRING;
  if (!description.type && !is_string) return summary;
  std::vector<nlohmann::json> values;
  // HDF5 refuses to read into no buffer, so an attribute without elements
  // (h5py's np.zeros(0)) is not read: it is an empty array of its shape.
  if (count > 0) {
    values = description.type ? read_numbers(attribute, type.get(), *description.type, count, where)
                              : read_strings(attribute, type.get(), space.get(), count, where);
  }
  std::size_t next = 0;
  return nest(values, shape, 0, next);
}

}  // namespace

nlohmann::json read_attributes(hid_t object, const h5_context& where) {
  std::vector<std::string> names;
  hsize_t position = 0;
  where.check(H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, &position, collect_name, &names),
              "cannot list attributes");
  nlohmann::json attributes = nlohmann::json::object();
  for (const auto& name : names) {
    auto attribute =
        where.own(H5Aopen(object, name.c_str(), H5P_DEFAULT), "cannot open attribute " + name);
    attributes[valid_utf8(name)] = attribute_value(attribute.get(), where);
  }
  return attributes;
}

}  // namespace featpool::detail
