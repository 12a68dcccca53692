#pragma once
// NPZ: a zip archive of NPY members, as np.savez (stored) and
// np.savez_compressed (deflated) write it, zip64 included. Each member is
// streamed through the NPY parser straight out of the archive: never
// extracted to disk, never held whole in memory.

#include <memory>
#include <string>

#include "featpool/source.hpp"

namespace featpool {

// Opens an .npz archive. Tensors are named after their members without the
// ".npy" suffix, as numpy's NpzFile.files names them.
std::unique_ptr<tensor_source> open_npz_file(const std::string& path);

}  // namespace featpool
