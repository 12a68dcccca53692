// featpool's command line: declares the CLI11 interface, fills the option
// structs the library defines, runs the command and maps failures to the
// exit codes of SPEC ("Errors and exit codes").

#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "featpool/error.hpp"
#include "featpool/exit_code.hpp"
#include "featpool/inspect.hpp"
#include "featpool/version.hpp"

namespace {

constexpr const char* kFooter = R"(Examples:
  featpool inspect sample_data                  every tensor under a folder
  featpool inspect feats.h5:/layer4/act --stats  one dataset, with min/max/mean/std
  featpool inspect 'dump.npz:conv*' --json      NPZ members by glob, as JSON
  zcat x.npy.gz | featpool inspect -            an NPY stream on standard input

Exit codes:
  0    everything asked for was done
  1    something about the files failed (missing, malformed, truncated, ...)
  2    the command line is wrong (unknown flag, malformed value)
  130  interrupted (SIGINT), 143 terminated (SIGTERM))";

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
  inspect->add_flag("--attrs", options.attrs, "Add each HDF5 dataset's attributes");
  inspect
      ->add_option("--name", options.name_globs,
                   "Only tensors whose name matches GLOB (repeatable)")
      ->type_name("GLOB")
      ->allow_extra_args(false);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"featpool: inspect and pool saved feature maps (NPY, NPZ, HDF5)", "featpool"};
  app.set_version_flag("--version", std::string(featpool::kVersion));
  app.require_subcommand(1);
  app.footer(kFooter);

  std::vector<std::string> inputs;
  featpool::inspect_options inspect_options;
  declare_inspect(app, inputs, inspect_options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& request) {
    return app.exit(request);
  } catch (const CLI::CallForAllHelp& request) {
    return app.exit(request);
  } catch (const CLI::CallForVersion& request) {
    return app.exit(request);
  } catch (const CLI::ParseError& failure) {
    std::cerr << "featpool: error: " << failure.what() << "; see 'featpool --help'\n";
    return featpool::exit_code::usage;
  }

  try {
    if (app.got_subcommand("inspect")) {
      return featpool::run_inspect(inputs, inspect_options, std::cout, std::cerr);
    }
  } catch (const featpool::usage_error& failure) {
    std::cerr << featpool::error_line(failure) << '\n';
    return featpool::exit_code::usage;
  } catch (const std::exception& failure) {
    std::cerr << featpool::error_line(failure) << '\n';
  }
  return featpool::exit_code::failure;
}
