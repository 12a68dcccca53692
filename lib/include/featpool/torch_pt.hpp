#pragma once
// PyTorch's .pt / .pth files as torch.save writes them since torch 1.6: a
// zip archive holding the pickled object (data.pkl) and each storage's bytes
// as a record of its own (data/<key>). The pickle is read by a restricted
// unpickler that runs no code; each tensor is streamed from its storage's
// record through the zip module.

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "featpool/source.hpp"

namespace featpool {

// Opens a torch.save file and lists its tensors, named by their path through
// the saved containers ("layer4", "feats.0", "out.logits"); a tensor saved by
// itself is named after the file's stem. Throws featpool::error, naming the
// file and the tensor.
std::unique_ptr<tensor_source> open_torch_file(const std::string& path);

// Whether the first bytes of a file, not a zip archive, are the pickle of
// torch.save's legacy format (torch < 1.6), which starts with its magic
// number.
bool starts_like_legacy_torch(std::span<const std::byte> first_bytes);

// The reason featpool gives for a legacy torch.save file.
inline constexpr const char* kLegacyTorchReason =
    "legacy torch.save format (torch < 1.6) is not supported: load the file with torch and save "
    "it again with torch >= 1.6, torch.save(obj, path), whose default "
    "_use_new_zipfile_serialization=True writes the zip format featpool reads";

}  // namespace featpool
