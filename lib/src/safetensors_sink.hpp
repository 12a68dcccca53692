#pragma once
// safetensors outputs, as the format's own library writes them: tensors
// ordered by element size (largest first) and then by name, the header
// padded with spaces so the data starts 8-aligned. __metadata__ holds
// "format": "pt", featpool_version, and each tensor's provenance under
// provenance_key(name), as JSON text (metadata values are strings).

#include <memory>
#include <string>

#include "featpool/sink.hpp"

namespace featpool {

std::unique_ptr<tensor_sink> create_safetensors_sink(const std::string& target, bool sync,
                                                     on_existing existing);

}  // namespace featpool
