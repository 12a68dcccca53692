#include "h5_listing.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

#include "featpool/error.hpp"

namespace featpool::detail {
namespace {

using nlohmann::json;

// MessagePack, not JSON text: dataset names are bytes, not always UTF-8,
// and MessagePack carries any bytes through unchanged.
json encode(const listed_dataset& dataset) {
  const tensor_info& info = dataset.info;
  json chunks = nullptr;
  if (info.chunks) chunks = *info.chunks;
  return {
      {"name", info.name},
      {"shape", info.shape},
      {"type", info.type ? json(dtype_name(*info.type)) : json(nullptr)},
      {"dtype", info.dtype_string},
      {"byte_order", byte_order_name(info.stored_byte_order)},
      {"nbytes", info.nbytes},
      {"chunks", chunks},
      {"filters", info.filters},
      {"null_space", dataset.null_space},
  };
}

byte_order byte_order_from_name(const std::string& name) {
  for (auto order : {byte_order::little, byte_order::big, byte_order::none}) {
    if (byte_order_name(order) == name) return order;
  }
  throw std::invalid_argument("unknown byte order " + name);
}

listed_dataset decode(const json& fields, const std::string& file) {
  listed_dataset dataset;
  tensor_info& info = dataset.info;
  info.file = file;
  info.format = file_format::hdf5;
  info.order = memory_order::c;
  info.name = fields.at("name").get<std::string>();
  info.shape = fields.at("shape").get<std::vector<std::uint64_t>>();
  if (const json& type = fields.at("type"); !type.is_null()) {
    info.type = dtype_from_name(type.get<std::string>());
    if (!info.type) throw std::invalid_argument("unknown dtype " + type.get<std::string>());
  }
  info.dtype_string = fields.at("dtype").get<std::string>();
  info.stored_byte_order = byte_order_from_name(fields.at("byte_order").get<std::string>());
  info.nbytes = fields.at("nbytes").get<std::uint64_t>();
  if (const json& chunks = fields.at("chunks"); !chunks.is_null()) {
    info.chunks = chunks.get<std::vector<std::uint64_t>>();
  }
  info.filters = fields.at("filters").get<std::vector<std::string>>();
  dataset.null_space = fields.at("null_space").get<bool>();
  return dataset;
}

}  // namespace

isolated_bytes encode_listing(const std::vector<listed_dataset>& datasets) {
  json listing = json::array();
  for (const auto& dataset : datasets) listing.push_back(encode(dataset));
  return json::to_msgpack(listing);
}

std::vector<listed_dataset> decode_listing(const isolated_bytes& bytes, const std::string& file) {
  try {
    std::vector<listed_dataset> datasets;
    for (const auto& fields : json::from_msgpack(bytes)) datasets.push_back(decode(fields, file));
    return datasets;
  } catch (const std::exception& failure) {  // json's, or an unknown name
    throw error(file,
                std::string("the helper process sent a malformed listing: ") + failure.what());
  }
}

}  // namespace featpool::detail
