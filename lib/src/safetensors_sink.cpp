#include "safetensors_sink.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "temporary_file.hpp"
#include <nlohmann/json.hpp>

#include "featpool/safetensors.hpp"

namespace featpool {
namespace {

// The little-endian bytes of a header length.
std::string length_field(std::uint64_t length) {
  std::string bytes(8, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(length >> (8 * i));
  return bytes;
}

class safetensors_sink final : public tensor_sink {
 public:
  safetensors_sink(const std::string& target, bool sync, on_existing existing)
      : file_(target, existing), sync_(sync) {}

  void write(const std::string& name, const pooled_tensor& tensor,
             const std::optional<provenance>& origin) override {
    tensors_.push_back({name, tensor});
    if (!origin) return;
    nlohmann::ordered_json record = {{"op", origin->op},
                                     {"size", origin->size},
                                     {"layout", origin->layout},
                                     {"source", origin->source},
                                     {"input_shape", origin->input_shape}};
    provenance_.emplace_back(provenance_key(name), record.dump());
  }

  void finish() override {
    std::stable_sort(tensors_.begin(), tensors_.end(), [](const named& a, const named& b) {
      std::size_t size_a = dtype_size(a.tensor.type), size_b = dtype_size(b.tensor.type);
      return size_a != size_b ? size_a > size_b : a.name < b.name;
    });
    // Readers look for "format": "pt" to take the tensors as PyTorch's.
    nlohmann::ordered_json header;
    header["__metadata__"] = {{"format", "pt"}, {"featpool_version", std::string(kVersion)}};
    for (const auto& [key, record] : provenance_) header["__metadata__"][key] = record;
    std::uint64_t offset = 0;
    for (const auto& [name, tensor] : tensors_) {
      header[name] = {{"dtype", safetensors_dtype_name(tensor.type)},
                      {"shape", tensor.shape},
                      {"data_offsets", {offset, offset + tensor.data.size()}}};
      offset += tensor.data.size();
    }
    std::string text = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    text.append((8 - text.size() % 8) % 8, ' ');
    file_.write(length_field(text.size()));
    file_.write(text);
    for (const auto& [name, tensor] : tensors_) {
      file_.write({reinterpret_cast<const char*>(tensor.data.data()), tensor.data.size()});
    }
    tensors_.clear();
    file_.finish(sync_);
  }

  void publish() override { file_.publish(sync_); }

 private:
  struct named {
    std::string name;
    pooled_tensor tensor;
  };
  temporary_file file_;
  bool sync_;
  std::vector<named> tensors_;  // the header, written first, needs them all
  std::vector<std::pair<std::string, std::string>> provenance_;  // metadata entries
};

}  // namespace

std::unique_ptr<tensor_sink> create_safetensors_sink(const std::string& target, bool sync,
                                                     on_existing existing) {
  return std::make_unique<safetensors_sink>(target, sync, existing);
}

}  // namespace featpool
