#pragma once
// Sinks write pooled tensors to output files: NPY, NPZ, HDF5, CSV, TSV or
// safetensors,
// each under a temporary name beside its target, renamed into place only
// when complete, so a crash, a full disk or Ctrl-C never leaves a
// truncated output.

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "featpool/discover.hpp"
#include "featpool/pool.hpp"
#include "featpool/version.hpp"

namespace featpool {

enum class output_format { npy, npz, hdf5, csv, tsv, safetensors };

// CSV and TSV hold text rows, one per sample, rather than named tensors.
inline bool holds_rows(output_format format) {
  return format == output_format::csv || format == output_format::tsv;
}

// What featpool records about each pooled tensor. HDF5 outputs carry it as
// the dataset attributes featpool_op, featpool_size, featpool_layout,
// featpool_source, featpool_input_shape and featpool_version.
struct provenance {
  std::string op;                          // "avg" or "max"
  std::string size;                        // the --size value, e.g. "7x7"
  std::string layout;                      // the layout letters, e.g. "NCHW"
  std::string source;                      // FILE or FILE:NAME of the input tensor
  std::vector<std::uint64_t> input_shape;  // the input tensor's shape
  std::string version{kVersion};           // the featpool that pooled it
};

// One output file being written.
class tensor_sink {
 public:
  // An uncommitted sink removes its temporary file.
  virtual ~tensor_sink() = default;
  // Adds a tensor under `name` (an HDF5 dataset path, an NPZ member name,
  // or for CSV and TSV the label of its rows; ignored by NPY sinks, which
  // take exactly one tensor). HDF5 records
  // `origin` as attributes; without it (merging an NPY file), none.
  virtual void write(const std::string& name, const pooled_tensor& tensor,
                     const std::optional<provenance>& origin) = 0;
  // Completes the file under its temporary name; with `sync`, on disk.
  // The expensive half of committing, safe to run on any worker.
  virtual void finish() = 0;
  // Renames the finished file into place (with `sync`, fsyncs its folder):
  // the cheap half, which the executor runs in input order.
  virtual void publish() = 0;
};

// What publishing does when the target exists by then. Planning refused
// existing outputs already, so without --force one that exists at publish
// time was written meanwhile by another process: keeping it means two
// processes writing one output give one of their files whole, or an error.
enum class on_existing { replace, refuse };

// A sink for `target`. The temporary file is created at once, in the
// target's folder, named `.<target name>.featpool-tmp-XXXXXX` (the target
// name cut short when the whole would pass the file system's name limit).
std::unique_ptr<tensor_sink> create_sink(output_format format, const std::string& target, bool sync,
                                         on_existing existing = on_existing::replace);

// Why the one output file `output` may not be written, or nothing: it is one
// of `inputs` (through any link; never written, even with `force`), or it
// exists and `force` is not set.
std::optional<std::string> output_refusal(const std::string& output,
                                          const std::vector<input_file>& inputs, bool force);

// One NPY stream on standard output.
std::unique_ptr<tensor_sink> create_stdout_sink();

// Writes `bytes` to `path`: a new or regular file through a temporary file
// and a rename; anything else (a symlink such as /dev/stderr, a device, a
// FIFO) in place, as a shell's `>` would, so that it is never replaced.
void write_output_file(const std::string& path, std::string_view bytes, bool sync);

// Writes `text` to `out`, which is standard output, and flushes it. Throws
// featpool::error naming "-" when that fails, so a full disk behind `>` is
// an error rather than a silent loss.
void write_standard_output(std::ostream& out, std::string_view text);

// Whether a file name is one of featpool's temporary files.
bool is_temporary_name(const std::string& file_name);

}  // namespace featpool
