// Fuzz target: the command line's value parsers. The input is up to four
// lines, up to its first NUL (arguments are C strings): a --size value (one
// size, or a pyramid's levels), a --layout value, the NAME of a FILE:NAME
// argument (also tried as a --name glob) and a --channels slice. Each must
// parse or be refused with featpool's own error, and what parses must make
// sense.

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_inputs.hpp"

#include "featpool/discover.hpp"
#include "featpool/error.hpp"
#include "featpool/layout.hpp"
#include "featpool/python_slice.hpp"

namespace {

using namespace featpool;

[[noreturn]] void broken(std::string_view what, std::string_view input) {
  std::cerr << "fuzz harness: " << what << " for '" << input << "'\n";
  std::abort();
}

// The text up to the next '\n' (or the end), and what follows it.
std::pair<std::string_view, std::string_view> next_line(std::string_view text) {
  auto end = text.find('\n');
  if (end == std::string_view::npos) return {text, {}};
  return {text.substr(0, end), text.substr(end + 1)};
}

void check_size(std::string_view text) {
  size_spec spec;
  try {
    spec = parse_size(text);
  } catch (const usage_error&) {
    return;
  }
  if (spec.sizes.empty() || spec.text != text) broken("--size parsed to nothing", text);
  for (const auto& size : spec.sizes) {
    if (size && *size == 0) broken("--size accepted a 0", text);
  }
  // One size for every axis, or one per axis; anything else is a reason.
  for (std::size_t axes = 1; axes <= 4; ++axes) {
    std::vector<std::uint64_t> lengths(axes, 5);
    std::string reason;
    auto resolved = resolve_size(spec, lengths, reason);
    bool fits = spec.sizes.size() == 1 || spec.sizes.size() == axes;
    if (fits != resolved.has_value() || (!resolved && reason.empty())) {
      broken("resolve_size disagrees with the number of sizes", text);
    }
    if (resolved && resolved->size() != axes) broken("resolve_size lost an axis", text);
  }
}

// A pyramid is levels that each parse as one size, joined back unchanged.
void check_size_levels(std::string_view text) {
  std::vector<size_spec> levels;
  try {
    levels = parse_size_levels(text);
  } catch (const usage_error&) {
    return;
  }
  if (levels.empty() || size_levels_text(levels) != text) {
    broken("--size levels do not join back to the text", text);
  }
  for (const auto& level : levels) check_size(level.text);
}

void check_layout(std::string_view text) {
  layout axes;
  try {
    axes = parse_layout(text);
  } catch (const usage_error&) {
    return;
  }
  if (axes.rank() != text.size() || axes.spatial_axes.empty()) {
    broken("--layout parsed to the wrong axes", text);
  }
  std::size_t counted =
      axes.spatial_axes.size() + (axes.batch_axis ? 1 : 0) + (axes.channel_axis ? 1 : 0);
  if (counted != axes.rank()) broken("--layout lost an axis", text);
  for (std::size_t i = 0; i < axes.rank(); ++i) {
    char letter = axes.letters[i];
    if (!std::isupper(static_cast<unsigned char>(letter)) || axes.letters.find(letter) != i) {
      broken("--layout kept a letter that is not a unique capital", text);
    }
  }
  if (parse_layout(axes.letters).letters != axes.letters) broken("--layout is not stable", text);
}

// FILE:NAME splits on the last ':' when what precedes it is a file; the
// NAME then selects among a file's tensors, as a literal or a glob.
void check_selector(std::string_view name) {
  static const featpool::fuzz::temp_file kFile{std::span<const std::uint8_t>{}, ".npz"};
  static const std::vector<std::string> kNames{"/layer4/act", "/block1/conv", "/block2/conv_fp16",
                                               "conv5",       "labels",       "/a/b/c/deep"};
  std::vector<tensor_info> tensors;
  for (const auto& tensor_name : kNames) {
    tensor_info info;
    info.file = kFile.path();
    info.name = tensor_name;
    tensors.push_back(std::move(info));
  }
  std::string selector(name);
  std::vector<input_file> inputs;
  try {
    inputs = expand_input(kFile.path() + ":" + selector);
  } catch (const error&) {
    return;
  }
  if (inputs.size() != 1 || inputs[0].path != kFile.path() || inputs[0].selector != selector) {
    broken("FILE:NAME split in the wrong place", name);
  }
  try {
    auto selected = select_tensors(tensors, inputs[0], {});
    if (!is_glob(selector)) {
      for (auto index : selected) {
        if (without_leading_slash(kNames[index]) != without_leading_slash(selector)) {
          broken("a literal NAME selected another tensor", name);
        }
      }
    }
  } catch (const error&) {
  }
  input_file whole_file{kFile.path(), kFile.path(), "", std::nullopt, false};
  try {
    select_tensors(tensors, whole_file, {selector});
  } catch (const error&) {
  }
}

// A slice selects, on axes of a few lengths, positions in range, each once,
// stepping as its step says; as many as Python's len(range(*s.indices(n))).
void check_slice(std::string_view text) {
  python_slice slice;
  try {
    slice = parse_python_slice("--channels", text);
  } catch (const usage_error&) {
    return;
  }
  for (std::uint64_t length = 0; length <= 9; ++length) {
    auto positions = slice_positions(slice, length);
    if (slice.single_index) {
      if (positions.size() > 1 || (positions.size() == 1 && positions[0] >= length)) {
        broken("an index selected more than one position, or one out of range", text);
      }
      continue;
    }
    std::int64_t step = slice.step.value_or(1);
    for (std::size_t i = 0; i < positions.size(); ++i) {
      if (positions[i] >= length) broken("a slice selected a position out of range", text);
      if (i > 0 && static_cast<std::int64_t>(positions[i] - positions[i - 1]) != step) {
        broken("a slice did not step by its step", text);
      }
    }
    if (positions.size() > length) broken("a slice selected more positions than there are", text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // Command-line arguments are C strings: none holds a NUL.
  text = text.substr(0, text.find('\0'));
  auto [size_text, after_size] = next_line(text);
  auto [layout_text, after_layout] = next_line(after_size);
  auto [name, slice_text] = next_line(after_layout);
  check_size(size_text);
  check_size_levels(size_text);
  check_layout(layout_text);
  check_selector(name);
  check_slice(slice_text);
  return 0;
}
