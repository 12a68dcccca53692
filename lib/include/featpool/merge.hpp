#pragma once
// `featpool merge`: copies the tensors of many files (a mirrored directory
// of pooled outputs, per-shard files) into one .h5 or .npz, unchanged, named
// as `pool` names the tensors it collects. The output appears only when
// complete; every problem that can be found before copying (collisions, an
// existing output, non-numeric tensors) is found first, all at once.

#include <string>
#include <vector>

#include "featpool/batch.hpp"

namespace featpool {

struct merge_options {
  std::vector<std::string> inputs;
  std::string output;  // .h5, .hdf5 or .npz
  bool force = false;
  bool sync = false;
  bool quiet = false;
};

// Runs the whole command; returns the exit code.
int run_merge(const merge_options& options, console& io);

}  // namespace featpool
