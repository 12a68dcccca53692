#pragma once
// How tensors are named in outputs that collect them (SPEC: "Outputs"),
// shared by `pool` and `merge` so both name a tensor the same way.

#include <cstddef>
#include <string>
#include <vector>

#include "featpool/discover.hpp"
#include "featpool/sink.hpp"

namespace featpool {

// Each file's path without extension: relative to the directory argument it
// was found under, or for file arguments to the deepest folder holding all
// of them; "stdin" for standard input.
std::vector<std::string> relative_stems(const std::vector<input_file>& files);

// The name a tensor gets in one file collecting the tensors of
// `discovered_files` input files: its own name when there is one file,
// else /<stem>/<name>, or /<stem> for a file that holds one unnamed tensor
// (NPY).
std::string collected_name(const std::string& relative_stem, bool holds_many,
                           const std::string& tensor_name, std::size_t discovered_files);

// The name of a tensor's --indices, beside it: `<name>_indices` (before
// name_in adds an NPZ member's ".npy").
std::string indices_name(const std::string& name);

// The name as stored in a file of `format`: HDF5 paths start with '/', NPZ
// members do not and end in ".npy", as numpy names them.
std::string name_in(output_format format, const std::string& name);

// The file extension featpool gives a mirrored output of `format`.
std::string extension_of(output_format format);

// Two names in one output file that cannot both be there: the same name
// twice, or (HDF5) a name that would be a dataset and a group at once.
struct name_clash {
  std::size_t first;   // index into the names given
  std::size_t second;  // the later duplicate, or a name inside `first`
  bool group = false;  // `second` is inside `first`
};

std::vector<name_clash> find_name_clashes(const std::vector<std::string>& names, bool hdf5);

}  // namespace featpool
