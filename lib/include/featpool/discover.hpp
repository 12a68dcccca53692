#pragma once
// Discovery: turns command-line INPUT arguments into the files to open and
// the tensors to take from each (SPEC: "Tensor references").

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "featpool/source.hpp"

namespace featpool {

// One file (or stream) an argument resolved to.
struct input_file {
  std::string path;                     // what to open; "-" for standard input
  std::string display;                  // how messages and reports name it
  std::string root;                     // the directory argument it was found under, if any
  std::optional<std::string> selector;  // NAME of a FILE:NAME argument: a literal or a glob
  bool stream = false;                  // standard input or a FIFO: read once, NPY only
};

// Resolves one argument: a file, FILE:NAME, a directory (every .npy, .npz,
// .h5 and .hdf5 below it, recursively, in byte order of the path, hidden
// entries and symlinked directories left out), "-", or a FIFO.
std::vector<input_file> expand_input(const std::string& argument);

// Opens a file or stream with the reader its contents call for (by magic
// bytes, not by extension).
std::unique_ptr<tensor_source> open_input(const input_file& input);

// Indices of the tensors of `tensors` that `input` and the --name globs
// select, in file order. A literal selector that names nothing is an error
// with a did-you-mean hint; so is a glob that matches nothing.
std::vector<std::size_t> select_tensors(const std::vector<tensor_info>& tensors,
                                        const input_file& input,
                                        const std::vector<std::string>& name_globs);

// A tensor name without its leading '/': HDF5 paths have one, NPZ members
// not, and FILE:NAME accepts both.
std::string without_leading_slash(const std::string& name);

// True when `pattern` holds glob characters (`*`, `?`, `[`).
bool is_glob(const std::string& pattern);

// Matches a tensor name against a glob as SPEC says: `*` does not cross
// '/', the leading '/' is optional, and a pattern without '/' matches the
// last component of the name.
bool name_matches(const std::string& pattern, const std::string& name);

}  // namespace featpool
