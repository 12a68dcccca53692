#pragma once
// NPZ: a zip archive of NPY members, as np.savez (stored) and
// np.savez_compressed (deflated) write it, zip64 included. Each member is
// streamed through the NPY parser straight out of the archive: never
// extracted to disk, never held whole in memory.

#include <memory>
#include <string>

#include "featpool/source.hpp"

namespace featpool {

// Opens an .npz archive and lists its tensors in the archive's order. The
// member "conv5.npy" is the tensor "conv5", as numpy's NpzFile.files names
// it; a member without the suffix is a tensor under its full name when it
// holds NPY data and is skipped otherwise, as directory entries are. Every
// reader has a libzip handle of its own, so readers of one source may run on
// different threads. Throws featpool::error, naming the file and the member.
std::unique_ptr<tensor_source> open_npz_file(const std::string& path);

}  // namespace featpool
