#include "featpool/map_selection.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "featpool/element.hpp"
#include "featpool/error.hpp"
#include "featpool/inspect.hpp"
#include "featpool/interrupt.hpp"

namespace featpool {
namespace {

// The multiplier of each axis's index in the element's position in storage.
std::vector<std::uint64_t> storage_strides(const tensor_info& info) {
  std::size_t rank = info.shape.size();
  std::vector<std::uint64_t> strides(rank, 1);
  if (info.order == memory_order::c) {
    for (std::size_t axis = rank; axis-- > 1;) strides[axis - 1] = strides[axis] * info.shape[axis];
  } else {
    for (std::size_t axis = 1; axis < rank; ++axis) {
      strides[axis] = strides[axis - 1] * info.shape[axis - 1];
    }
  }
  return strides;
}

// An element to copy: where it lies in storage and where it goes.
struct wanted_element {
  std::uint64_t storage;
  std::uint64_t target;
};

// Copies the wanted elements (sorted by place in storage) as the reader's
// blocks pass by, and stops reading after the last.
void read_streaming(block_reader& reader, dtype type, const tensor_info& info,
                    const std::vector<wanted_element>& wanted, std::vector<double>& values) {
  auto next = wanted.begin();
  std::uint64_t block_start = 0;
  visit_dtype(type, [&]<class T>(std::type_identity<T>) {
    while (next != wanted.end()) {
      check_interrupt();
      auto block = reader.next();
      if (block.empty()) {
        throw error(tensor_reference(info), "the data ended before the maps to draw");
      }
      auto elements = elements_of<T>(block);
      std::uint64_t block_end = block_start + elements.size();
      for (; next != wanted.end() && next->storage < block_end; ++next) {
        values[next->target] = to_double(elements[next->storage - block_start]);
      }
      block_start = block_end;
    }
  });
}

// The same for a tensor that lies in its file as one run of bytes: reads
// only from each wanted element on, a block at a time, so the last sample
// of a large dump costs what the first does.
void read_in_place(const raw_extent& raw, dtype type, const tensor_info& info,
                   const std::vector<wanted_element>& wanted, std::vector<double>& values) {
  std::size_t item = dtype_size(type);
  std::vector<std::byte> buffer(kBlockBytes / item * item);
  std::uint64_t block_elements = buffer.size() / item;
  auto next = wanted.begin();
  visit_dtype(type, [&]<class T>(std::type_identity<T>) {
    while (next != wanted.end()) {
      check_interrupt();
      std::uint64_t first = next->storage;
      std::uint64_t count = std::min(block_elements, wanted.back().storage - first + 1);
      std::span<std::byte> block(buffer.data(), count * item);
      read_raw_elements(raw, info, item, first, block);
      auto elements = elements_of<T>(block);
      for (; next != wanted.end() && next->storage < first + count; ++next) {
        values[next->target] = to_double(elements[next->storage - first]);
      }
    }
  });
}

}  // namespace

map_selection select_maps(const tensor_info& info, const layout& axes, const map_request& request) {
  auto fail = [&](std::string reason) { return error(tensor_reference(info), std::move(reason)); };
  if (axes.rank() != info.shape.size()) {
    throw fail(fmt::format("layout {} has {} axes, the tensor {} has {}", axes.letters, axes.rank(),
                           shape_text(info.shape), info.shape.size()));
  }
  if (axes.spatial_axes.size() > 3) {
    throw fail(fmt::format("layout {} has {} spatial axes; view draws 1-, 2- or 3-D maps",
                           axes.letters, axes.spatial_axes.size()));
  }
  map_selection selection;
  selection.axes = axes;
  auto length = [&](std::optional<std::size_t> axis) -> std::uint64_t {
    return axis ? info.shape[*axis] : 1;
  };
  auto samples = length(axes.batch_axis);
  auto sample = index_position(request.sample, samples);
  if (!sample) {
    throw fail(fmt::format("--sample {} is out of range: the tensor has {} sample{}",
                           request.sample, samples, samples == 1 ? "" : "s"));
  }
  selection.sample = *sample;

  auto channel_count = length(axes.channel_axis);
  selection.channels = slice_positions(request.channels, channel_count);
  if (selection.channels.empty()) {
    throw fail(fmt::format("--channels {} {}: the tensor has {} channel{}", request.channels.text,
                           request.channels.single_index ? "is out of range" : "selects no channel",
                           channel_count, channel_count == 1 ? "" : "s"));
  }

  const auto& spatial = axes.spatial_axes;
  bool three_d = spatial.size() == 3;
  if (request.depth && !three_d) {
    throw fail(fmt::format("--depth applies to 3-D maps; layout {} has {}-D maps", axes.letters,
                           spatial.size()));
  }
  if (three_d) {
    auto depths = info.shape[spatial[0]];
    auto depth =
        index_position(request.depth.value_or(static_cast<std::int64_t>(depths / 2)), depths);
    if (!depth) {
      throw fail(request.depth
                     ? fmt::format("--depth {} is out of range: the maps have a depth of {}",
                                   *request.depth, depths)
                     : std::string("the maps have a depth of 0: nothing to draw"));
    }
    selection.depth = *depth;
  }
  selection.width = info.shape[spatial.back()];
  selection.height = spatial.size() >= 2 ? info.shape[spatial[spatial.size() - 2]] : 1;
  if (selection.map_size() == 0) {
    throw fail(
        fmt::format("the maps are {}x{}: nothing to draw", selection.height, selection.width));
  }
  return selection;
}

std::vector<double> read_maps(block_reader& reader, dtype type, const tensor_info& info,
                              const map_selection& selection) {
  auto strides = storage_strides(info);
  const auto& axes = selection.axes;
  const auto& spatial = axes.spatial_axes;
  std::uint64_t base = 0;
  if (axes.batch_axis) base += selection.sample * strides[*axes.batch_axis];
  if (selection.depth) base += *selection.depth * strides[spatial[0]];
  std::uint64_t x_stride = strides[spatial.back()];
  std::uint64_t y_stride = spatial.size() >= 2 ? strides[spatial[spatial.size() - 2]] : 0;

  std::vector<wanted_element> wanted;
  wanted.reserve(selection.channels.size() * selection.map_size());
  std::uint64_t target = 0;
  for (auto channel : selection.channels) {
    std::uint64_t map_base = base;
    if (axes.channel_axis) map_base += channel * strides[*axes.channel_axis];
    for (std::uint64_t y = 0; y < selection.height; ++y) {
      for (std::uint64_t x = 0; x < selection.width; ++x) {
        wanted.push_back({map_base + y * y_stride + x * x_stride, target++});
      }
    }
  }
  std::sort(wanted.begin(), wanted.end(),
            [](const wanted_element& a, const wanted_element& b) { return a.storage < b.storage; });

  std::vector<double> values(wanted.size());
  if (auto raw = reader.raw()) {
    read_in_place(*raw, type, info, wanted, values);
  } else {
    read_streaming(reader, type, info, wanted, values);
  }
  return values;
}

}  // namespace featpool
