#include "featpool/view.hpp"

#include <algorithm>
#include <csignal>
#include <memory>
#include <ostream>
#include <vector>

#include "temporary_file.hpp"
#include <fmt/format.h>

#include "featpool/bfloat16.hpp"
#include "featpool/discover.hpp"
#include "featpool/error.hpp"
#include "featpool/exit_code.hpp"
#include "featpool/interrupt.hpp"
#include "featpool/png_encoder.hpp"
#include "featpool/sink.hpp"
#include "featpool/terminal_image.hpp"

namespace featpool {
namespace {

// Messages name this many tensors of an input that holds too many.
constexpr std::size_t kNamedTensors = 5;

bool ends_with_png(const std::string& path) {
  if (path.size() < 4) return false;
  std::string suffix = path.substr(path.size() - 4);
  std::transform(suffix.begin(), suffix.end(), suffix.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return suffix == ".png";
}

// The one tensor an argument resolves to, with its file still open.
struct chosen_tensor {
  input_file file;
  std::unique_ptr<tensor_source> source;
  std::size_t index = 0;
  tensor_info info;
};

chosen_tensor resolve_one(const std::string& argument) {
  std::optional<chosen_tensor> chosen;
  std::vector<std::string> names;
  for (auto& file : expand_input(argument)) {
    auto source = open_input(file);
    const auto& tensors = source->tensors();
    auto selected = select_tensors(tensors, file, {});
    for (auto index : selected) {
      tensor_info info = tensors[index];
      info.file = file.display;
      names.push_back(tensor_reference(info));
    }
    if (!chosen && !selected.empty()) {
      tensor_info info = tensors[selected.front()];
      info.file = file.display;
      chosen = chosen_tensor{file, std::move(source), selected.front(), std::move(info)};
    }
  }
  if (names.empty()) throw error(argument, "holds no tensor to draw");
  if (names.size() > 1) {
    std::size_t count = names.size();
    names.resize(std::min(count, kNamedTensors));
    std::string list = fmt::format("{}", fmt::join(names, ", "));
    if (count > names.size()) list += fmt::format(" and {} more", count - names.size());
    throw error(argument, fmt::format("resolves to {} tensors ({}); view draws one: name it as "
                                      "FILE:NAME",
                                      count, list));
  }
  return std::move(*chosen);
}

layout layout_of(const tensor_info& info, const std::optional<layout>& given) {
  if (given) return *given;
  auto by_rank = default_layout(info.shape.size());
  if (!by_rank) {
    throw error(tensor_reference(info),
                fmt::format("rank {} has no default layout; pass --layout (e.g. L, HW or CHW)",
                            info.shape.size()));
  }
  return *by_rank;
}

void check_png_size(const grid_geometry& grid, const std::string& output) {
  auto fits = [](std::uint64_t count, std::uint64_t side) {
    return count <= (kPngMaxSide - 1) / (side + 1);
  };
  if (!fits(grid.cols, grid.tile_width) || !fits(grid.rows, grid.tile_height)) {
    throw error(output, fmt::format("a grid of {}x{} tiles of {}x{} pixels is larger than a PNG "
                                    "can be; draw fewer channels or pass a smaller --tile",
                                    grid.rows, grid.cols, grid.tile_height, grid.tile_width));
  }
}

void write_png(const std::string& target, const grid_geometry& grid,
               std::span<const std::uint16_t> levels, colormap map,
               const std::function<void(std::string_view)>& write) {
  const auto& table = colours_of(map);
  std::vector<std::uint16_t> row(grid.width());
  auto fill_row = [&](std::uint32_t y, std::uint8_t* rgb_row) {
    check_interrupt();
    grid_row(grid, levels, y, row);
    for (auto level : row) {
      rgb colour = level_colour(level, table);
      *rgb_row++ = colour.r;
      *rgb_row++ = colour.g;
      *rgb_row++ = colour.b;
    }
  };
  encode_png(target, static_cast<std::uint32_t>(grid.width()),
             static_cast<std::uint32_t>(grid.height()), fill_row, write);
}

std::string caption(const chosen_tensor& tensor, const map_selection& selection,
                    const view_options& options) {
  auto channels = selection.axes.channel_axis ? tensor.info.shape[*selection.axes.channel_axis] : 1;
  std::string where = fmt::format("{}: sample {}, {} of {} channel{} ({}), {}x{} maps",
                                  tensor_reference(tensor.info), selection.sample,
                                  selection.channels.size(), channels, channels == 1 ? "" : "s",
                                  options.maps.channels.text, selection.height, selection.width);
  if (selection.depth) where += fmt::format(" at depth {}", *selection.depth);
  return where + '\n';
}

}  // namespace

void check_view_destination(const view_options& options, const view_terminal& terminal) {
  const auto& output = options.output;
  if (!output.empty() && output != "-" && !ends_with_png(output)) {
    throw usage_error(
        fmt::format("-o: '{}': view writes PNG images: name the output *.png, or "
                    "- for standard output",
                    output));
  }
  if (output == "-" && options.term) {
    throw usage_error("-o - and --term would both write to standard output");
  }
  if (output == "-" && terminal.is_terminal) {
    throw usage_error(
        "-o -: standard output is a terminal; redirect it, or pass -o FILE.png or --term");
  }
  if (output.empty() && !options.term && !terminal.is_terminal) {
    throw usage_error(
        "standard output is not a terminal: pass -o FILE.png, -o - for PNG on standard output, "
        "or --term for the text preview");
  }
}

int run_view(const view_options& options, std::ostream& out, const view_terminal& terminal) {
  auto tensor = resolve_one(options.input);
  const auto& info = tensor.info;
  if (!info.numeric()) {
    throw error(tensor_reference(info),
                fmt::format("is {}, not numeric: view draws numbers only", info.dtype_string));
  }
  auto selection = select_maps(info, layout_of(info, options.axes), options.maps);
  auto grid = upscaled_grid(selection.channels.size(), selection.height, selection.width,
                            options.cols, options.tile);
  bool png = !options.output.empty();
  if (png) check_png_size(grid, options.output);
  std::optional<temporary_file> file;
  if (png && options.output != "-") {
    if (auto refusal = output_refusal(options.output, {tensor.file}, options.force)) {
      throw error(options.output, *refusal);
    }
    file.emplace(options.output, options.force ? on_existing::replace : on_existing::refuse);
  }

  install_interrupt_handlers();
  try {
    auto reader = open_computed(*tensor.source, tensor.index);
    auto values = read_maps(*reader, computed_type(*info.type), info, selection);
    auto levels = value_levels(values, selection.map_size(), options.scale);
    if (file) {
      write_png(options.output, grid, levels, options.cmap,
                [&](std::string_view bytes) { file->write(bytes); });
      file->finish(false);
      file->publish(false);
    } else if (png) {
      write_png("-", grid, levels, options.cmap,
                [&](std::string_view bytes) { write_standard_output(out, bytes); });
    }
    if (options.term || !png) {
      auto fitted = fitted_grid(grid, terminal.columns);
      write_standard_output(out, caption(tensor, selection, options) +
                                     terminal_image(fitted, levels, options.cmap,
                                                    terminal.colour ? terminal_colour::truecolour
                                                                    : terminal_colour::none));
    }
  } catch (const interrupted& stop) {
    return stop.signal == SIGTERM ? exit_code::terminated : exit_code::interrupted;
  }
  return exit_code::ok;
}

}  // namespace featpool
