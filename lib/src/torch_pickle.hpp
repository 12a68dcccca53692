#pragma once
// The pickle torch.save writes as data.pkl, read by a restricted unpickler
// that runs no code and imports nothing. It knows the opcodes of pickle
// protocol 2 (and the few of protocols 3 and 4 a re-pickled file may use
// for the same things) and a fixed list of globals: torch's tensor rebuild
// functions, collections.OrderedDict and the typed storage classes. Every
// other global, opcode or call is refused, naming it. What comes out is a
// description of the tensors and their storages; no value is constructed.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "featpool/dtype.hpp"

namespace featpool::detail {

// A storage, as the persistent id ('storage', torch.FloatStorage, key,
// location, numel) names it: its data is the zip record data/<key>.
struct torch_storage {
  std::string key;            // the record's name under data/
  std::string type_name;      // the storage class, e.g. "torch.FloatStorage"
  dtype type = dtype::uint8;  // the element type of that class
  std::uint64_t numel = 0;    // elements, as the pickle says
};

// A tensor, as torch._utils._rebuild_tensor_v2 rebuilds it: a view of
// `shape` into its storage starting at `offset`, in elements, with the
// given strides (elements too).
struct torch_tensor {
  std::string name;  // the container path ("feats.0", "out.logits"); "" for the object itself
  std::size_t storage = 0;  // index into torch_pickle::storages
  std::uint64_t offset = 0;
  std::vector<std::uint64_t> shape;
  std::vector<std::uint64_t> strides;
};

struct torch_pickle {
  std::vector<torch_storage> storages;  // each key once, in order of first use
  std::vector<torch_tensor> tensors;    // in the order containers hold them
};

// Reads data.pkl. Tensors are named by their path through dicts (by key),
// lists and tuples (by index), joined with '.'; values that are no tensor
// (numbers, strings, None) are left out. Throws featpool::error naming
// `file` for anything torch.save would not have written.
torch_pickle read_torch_pickle(std::span<const std::byte> pickle, const std::string& file);

}  // namespace featpool::detail
