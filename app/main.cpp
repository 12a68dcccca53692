// featpool's command line: declares the CLI11 interface, fills the option
// structs the library defines, runs the command and maps failures to the
// exit codes of SPEC ("Errors and exit codes").

#include <sys/ioctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "featpool/batch.hpp"
#include "featpool/cpus.hpp"
#include "featpool/error.hpp"
#include "featpool/exit_code.hpp"
#include "featpool/inspect.hpp"
#include "featpool/merge.hpp"
#include "featpool/pool.hpp"
#include "featpool/version.hpp"
#include "featpool/view.hpp"

namespace {

constexpr const char* kFooter = R"(Examples:
  featpool inspect sample_data                    every tensor under a folder
  featpool inspect feats.h5:/layer4/act --stats   one dataset, with min/max/mean/std
  featpool pool x.npy -o feats.npy --flatten      (N, C, H, W) -> (N, C) feature vectors
  featpool pool x.npy -o feats.csv --flatten      the same as a header and one row per sample
  featpool pool dump.h5 -o maps.h5 --size 7x7     every dataset to 7x7 maps, one file
  featpool pool dumps/ -o pooled/ --keep-going    a whole tree, mirrored, resumable
  featpool merge pooled/ -o features.h5           then everything in one HDF5 file
  featpool view x.npy                             the first sample's channels, on the terminal
  featpool view x.npy -o grid.png --channels :16  16 channels as a PNG grid of heat maps
  zcat x.npy.gz | featpool pool - -o - | ...      NPY in, NPY out, through pipes

Exit codes:
  0    everything asked for was done (skipped tensors included)
  1    something about the files failed (missing, malformed, truncated, exists...)
  2    the command line is wrong (unknown flag, malformed value)
  130  interrupted (SIGINT), 143 terminated (SIGTERM))";

// Flag values as typed, converted by the library after parsing so that its
// plain-English messages, not CLI11's, describe a bad value.
struct pool_flags {
  std::string op = "avg";
  std::string p;
  std::string eps;
  std::string r;
  std::string size = "1";
  std::string layout;
  std::string normalize;
  std::string dtype = "auto";
  std::string format;
  std::string report_format;
  std::string report;
  std::string shard;
};

// view's flags as typed, checked after parsing like pool's.
struct view_flags {
  std::string sample = "0";
  std::string channels{featpool::kDefaultChannels};
  std::string depth;
  std::string cmap = "viridis";
  std::string scale = "channel";
  std::string layout;
};

void declare_inspect(CLI::App& app, std::vector<std::string>& inputs,
                     featpool::inspect_options& options) {
  auto* inspect = app.add_subcommand(
      "inspect", "List every tensor: shape, dtype, byte order, order, bytes, HDF5 chunks/filters");
  inspect
      ->add_option("INPUT", inputs,
                   "FILE, FILE:NAME (globs allowed), a directory, or - for an NPY stream")
      ->required();
  inspect->add_flag("--json", options.json, "Print one JSON array instead of aligned text");
  inspect->add_flag("--stats", options.stats,
                    "Add min, max, mean, std of the finite values and NaN/Inf counts");
  inspect->add_flag(
      "--hist", options.hist,
      "Add a 16-bin histogram of the finite values between min and max (implies --stats)");
  inspect->add_flag(
      "--attrs", options.attrs,
      "Add each HDF5 dataset's attributes, a safetensors file's metadata, and where each .pt "
      "tensor lies");
  inspect
      ->add_option("--name", options.name_globs,
                   "Only tensors whose name matches GLOB (repeatable)")
      ->type_name("GLOB")
      ->allow_extra_args(false);
}

void declare_pool(CLI::App& app, featpool::pool_options& options, pool_flags& flags) {
  auto* pool = app.add_subcommand(
      "pool",
      "Adaptive average or max pooling with PyTorch's windows; writes NPY, NPZ, HDF5, CSV or TSV");
  pool->add_option("INPUT", options.inputs,
                   "FILE, FILE:NAME (globs allowed), a directory, or - for an NPY stream")
      ->required();
  pool->add_option("-o,--output", options.output,
                   "out.npy, out.npz, out.h5, out.safetensors, out.csv, out.tsv (rows of samples), "
                   "a directory (existing or ending in /), or -")
      ->required();
  pool->add_option("--op", flags.op,
                   "avg, max, sum or min of each window; avgmax: (avg + max) / 2; catavgmax: "
                   "avg and max concatenated on C (timm's); gem: (avg of clamp(x, eps)^p)^(1/p); "
                   "lse: log(avg of exp(r x)) / r")
      ->capture_default_str();
  pool->add_option("--p", flags.p, "gem's power p (default 3)");
  pool->add_option("--eps", flags.eps, "gem's clamp: x below it counts as it (default 1e-6)");
  pool->add_option("--r", flags.r, "lse's sharpness r (default 1)");
  pool->add_option("--size", flags.size,
                   "Output spatial size: 1, 7, 7x7, 3x5, 2x2x2; _ keeps an axis; 1,2,4: a "
                   "spatial pyramid, every size flattened, concatenated")
      ->capture_default_str();
  pool->add_option("--layout", flags.layout,
                   "Axis letters: N batch, C channels, others spatial (default by rank: NCL, "
                   "NCHW, NCDHW)");
  pool->add_flag("--flatten", options.flatten, "Output (N, rest): with --size 1, (N, C) vectors");
  pool->add_option("--normalize", flags.normalize,
                   "l2: divide each feature vector (along C, or each sample's with --flatten or "
                   "a pyramid) by its L2 norm")
      ->type_name("l2");
  pool->add_flag(
      "--indices", options.indices,
      "With --op max: also each window's argmax (int64 offsets into the input's "
      "spatial plane, PyTorch's return_indices) as NAME_indices; .h5, .npz, .safetensors "
      "or a directory");
  pool->add_option("--dtype", flags.dtype, "auto, float16, float32 or float64")
      ->capture_default_str();
  pool->add_option("--format", flags.format, "For directory outputs: npy, npz, h5 or safetensors");
  pool->add_option("--name", options.name_globs, "Only tensors whose name matches GLOB")
      ->type_name("GLOB")
      ->allow_extra_args(false);
  pool->add_option("--report", flags.report, "Write the shape report to PATH (- for stdout)")
      ->type_name("PATH");
  pool->add_option("--report-format", flags.report_format,
                   "text or json (default: json when PATH ends in .json)");
  pool->add_option("-j,--jobs", options.jobs, "Worker threads (default: the CPUs available)")
      ->default_val(featpool::available_cpus());
  pool->add_option("--shard", flags.shard,
                   "Process shard K of N: a balanced, deterministic share of the input files")
      ->type_name("K/N");
  pool->add_flag("--force", options.force, "Overwrite existing outputs");
  pool->add_flag("--skip-existing", options.skip_existing,
                 "Leave existing outputs alone and report them as skipped");
  pool->add_flag("--keep-going", options.keep_going, "Report a failed tensor and go on");
  pool->add_flag("--dry-run", options.dry_run, "Plan and report, write nothing");
  pool->add_flag("--sync", options.sync, "fsync every output and its folder");
  pool->add_flag("-q,--quiet", options.quiet, "No report on the terminal");
  pool->add_flag("-v,--verbose", options.verbose, "List every tensor even in large batches");
}

void declare_merge(CLI::App& app, featpool::merge_options& options) {
  auto* merge = app.add_subcommand(
      "merge",
      "Copy the tensors of many files (pooled outputs, shards) into one .h5, .npz or "
      ".safetensors");
  merge->add_option("INPUT", options.inputs, "FILE, FILE:NAME (globs allowed) or a directory")
      ->required();
  merge->add_option("-o,--output", options.output, "out.h5, out.hdf5, out.npz or out.safetensors")
      ->required();
  merge->add_flag("--force", options.force, "Overwrite an existing output");
  merge->add_flag("--sync", options.sync, "fsync the output and its folder");
  merge->add_flag("-q,--quiet", options.quiet, "No summary line");
}

void declare_view(CLI::App& app, featpool::view_options& options, view_flags& flags) {
  auto* view = app.add_subcommand(
      "view", "Draw one tensor's feature maps as a grid of heat maps: a PNG, or on the terminal");
  view->add_option("INPUT", options.input,
                   "FILE, FILE:NAME or - : an input that resolves to exactly one tensor")
      ->required();
  view->add_option("-o,--output", options.output,
                   "grid.png, or - for the PNG on standard output (default: draw on the "
                   "terminal)")
      ->type_name("PATH");
  view->add_flag("--term", options.term,
                 "Draw on standard output as text even when it is not a terminal");
  view->add_option("--sample", flags.sample, "Which sample (position on N; -1 is the last)")
      ->type_name("N")
      ->capture_default_str();
  view->add_option("--channels", flags.channels,
                   "Which channels, as a Python slice: 8:24, -16:, ::4, or one index")
      ->type_name("SLICE")
      ->capture_default_str();
  view->add_option("--cols", options.cols, "Tiles per row (default: ceil(sqrt(tiles)))")
      ->type_name("K")
      ->check(CLI::PositiveNumber);
  view->add_option("--tile", options.tile,
                   "Each map is enlarged by the largest whole factor that keeps it within PIXELS")
      ->type_name("PIXELS")
      ->check(CLI::Range(std::uint64_t{1}, featpool::kMaxTile))
      ->capture_default_str();
  view->add_option("--depth", flags.depth,
                   "3-D maps: which slice along D (default: the middle one)")
      ->type_name("D");
  view->add_option("--cmap", flags.cmap, "gray, viridis or magma")
      ->type_name("NAME")
      ->capture_default_str();
  view->add_option("--scale", flags.scale,
                   "channel: each map from its own min to max; global: one range for all")
      ->type_name("MODE")
      ->capture_default_str();
  view->add_option("--layout", flags.layout,
                   "Axis letters: N batch, C channels, others spatial (default by rank: NCL, "
                   "NCHW, NCDHW)")
      ->type_name("LETTERS");
  view->add_flag("--force", options.force, "Overwrite an existing output");
}

void apply_view_flags(featpool::view_options& options, const view_flags& flags) {
  options.maps.sample = featpool::parse_index("--sample", flags.sample);
  options.maps.channels = featpool::parse_python_slice("--channels", flags.channels);
  if (!flags.depth.empty()) options.maps.depth = featpool::parse_index("--depth", flags.depth);
  options.cmap = featpool::parse_colormap(flags.cmap);
  options.scale = featpool::parse_scale_mode(flags.scale);
  if (!flags.layout.empty()) options.axes = featpool::parse_layout(flags.layout);
}

// The width of the terminal `fd` is, or nothing when it is none.
std::optional<std::uint64_t> terminal_width(int fd) {
  winsize size{};
  if (::ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return std::nullopt;
}

// Standard output as view draws on it: its width from the terminal, else
// from COLUMNS, else 80; colour unless NO_COLOR is set (no-color.org).
featpool::view_terminal view_terminal() {
  featpool::view_terminal terminal;
  terminal.is_terminal = ::isatty(STDOUT_FILENO) == 1;
  if (auto width = terminal_width(STDOUT_FILENO)) {
    terminal.columns = *width;
  } else if (const char* columns = std::getenv("COLUMNS")) {
    if (long value = std::strtol(columns, nullptr, 10); value > 0) {
      terminal.columns = static_cast<std::uint64_t>(value);
    }
  }
  const char* no_color = std::getenv("NO_COLOR");
  terminal.colour = no_color == nullptr || *no_color == '\0';
  return terminal;
}

void apply_flags(featpool::pool_options& options, const pool_flags& flags) {
  options.op = featpool::parse_pool_op(flags.op);
  if (!flags.p.empty() || !flags.eps.empty()) {
    options.gem = featpool::parse_gem_params(flags.p, flags.eps);
  }
  if (!flags.r.empty()) options.lse_r = featpool::parse_lse_r(flags.r);
  options.sizes = featpool::parse_size_levels(flags.size);
  if (!flags.normalize.empty()) {
    featpool::check_normalization(flags.normalize);
    options.normalize = true;
  }
  if (!flags.layout.empty()) options.axes = featpool::parse_layout(flags.layout);
  options.output_type = featpool::parse_output_dtype(flags.dtype);
  if (!flags.format.empty()) options.format = featpool::parse_output_format(flags.format);
  if (!flags.report_format.empty()) {
    options.report_as = featpool::parse_report_format(flags.report_format);
  }
  if (!flags.report.empty()) options.report_path = flags.report;
  if (!flags.shard.empty()) options.shard = featpool::parse_shard(flags.shard);
}

}  // namespace

int main(int argc, char** argv) {
  // A closed stdout (`featpool inspect x | head`) ends the process quietly,
  // as SPEC says, even when the parent ignored SIGPIPE: the write would
  // otherwise fail with EPIPE and be reported as an error.
  std::signal(SIGPIPE, SIG_DFL);
  CLI::App app{
      "featpool: inspect, pool and view saved feature maps (NPY, NPZ, HDF5, safetensors, PyTorch "
      ".pt)",
      "featpool"};
  app.set_version_flag("--version", std::string(featpool::kVersion));
  app.require_subcommand(1);
  app.footer(kFooter);

  std::vector<std::string> inputs;
  featpool::inspect_options inspect_options;
  declare_inspect(app, inputs, inspect_options);
  featpool::pool_options pool_options;
  pool_flags flags;
  declare_pool(app, pool_options, flags);
  featpool::merge_options merge_options;
  declare_merge(app, merge_options);
  featpool::view_options view_options;
  view_flags view_flag_values;
  declare_view(app, view_options, view_flag_values);

  auto help_hint = [&] {
    for (const char* command : {"inspect", "pool", "merge", "view"}) {
      if (app.got_subcommand(command)) return std::string("featpool ") + command + " --help";
    }
    return std::string("featpool --help");
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& request) {
    return app.exit(request);
  } catch (const CLI::CallForAllHelp& request) {
    return app.exit(request);
  } catch (const CLI::CallForVersion& request) {
    return app.exit(request);
  } catch (const CLI::ParseError& failure) {
    std::cerr << "featpool: error: " << failure.what() << "; see '" << help_hint() << "'\n";
    return featpool::exit_code::usage;
  }

  try {
    if (app.got_subcommand("inspect")) {
      return featpool::run_inspect(inputs, inspect_options, std::cout, std::cerr);
    }
    if (app.got_subcommand("view")) {
      apply_view_flags(view_options, view_flag_values);
      auto terminal = view_terminal();
      featpool::check_view_destination(view_options, terminal);
      return featpool::run_view(view_options, std::cout, terminal);
    }
    featpool::console io{std::cout, std::cerr, ::isatty(STDOUT_FILENO) == 1,
                         ::isatty(STDERR_FILENO) == 1};
    if (auto width = terminal_width(STDERR_FILENO)) io.err_columns = *width;
    if (app.got_subcommand("merge")) return featpool::run_merge(merge_options, io);
    apply_flags(pool_options, flags);
    // A bad FEATPOOL_KERNELS is a usage error, found before any work starts.
    featpool::pooling_instruction_set();
    return featpool::run_pool(pool_options, io);
  } catch (const featpool::usage_error& failure) {
    std::cerr << featpool::error_line(failure) << "; see '" << help_hint() << "'\n";
    return featpool::exit_code::usage;
  } catch (const std::exception& failure) {
    std::cerr << featpool::error_line(failure) << '\n';
  }
  return featpool::exit_code::failure;
}
