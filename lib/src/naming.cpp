#include "featpool/naming.hpp"

#include <filesystem>
#include <map>
#include <optional>

namespace featpool {
namespace fs = std::filesystem;
namespace {

std::string stem_path(const fs::path& path) {
  return (path.parent_path() / path.stem()).generic_string();
}

}  // namespace

std::vector<std::string> relative_stems(const std::vector<input_file>& files) {
  std::optional<fs::path> common;
  for (const auto& file : files) {
    if (!file.root.empty() || file.path == "-") continue;
    fs::path parent = fs::absolute(file.path).lexically_normal().parent_path();
    if (!common) {
      common = parent;
      continue;
    }
    fs::path shared;
    auto a = common->begin();
    auto b = parent.begin();
    for (; a != common->end() && b != parent.end() && *a == *b; ++a, ++b) shared /= *a;
    common = shared;
  }
  std::vector<std::string> stems;
  for (const auto& file : files) {
    if (file.path == "-") {
      stems.push_back("stdin");
    } else if (!file.root.empty()) {
      stems.push_back(stem_path(fs::path(file.path).lexically_relative(file.root)));
    } else {
      fs::path absolute = fs::absolute(file.path).lexically_normal();
      stems.push_back(stem_path(absolute.lexically_relative(*common)));
    }
  }
  return stems;
}

std::string collected_name(const std::string& relative_stem, bool holds_many,
                           const std::string& tensor_name, std::size_t discovered_files) {
  if (discovered_files == 1) return tensor_name;
  if (!holds_many) return "/" + relative_stem;
  return "/" + relative_stem + "/" + without_leading_slash(tensor_name);
}

std::string indices_name(const std::string& name) { return name + "_indices"; }

std::string name_in(output_format format, const std::string& name) {
  if (format == output_format::npz) return without_leading_slash(name) + ".npy";
  if (format == output_format::safetensors) return without_leading_slash(name);
  if (format != output_format::hdf5) return name;
  // Built piece by piece: g++ 12 warns falsely (-Wrestrict) on "/" + string.
  std::string path("/");
  path += without_leading_slash(name);
  return path;
}

std::string extension_of(output_format format) {
  switch (format) {
    case output_format::npy:
      break;
    case output_format::npz:
      return ".npz";
    case output_format::hdf5:
      return ".h5";
    case output_format::csv:
      return ".csv";
    case output_format::tsv:
      return ".tsv";
    case output_format::safetensors:
      return ".safetensors";
  }
  return ".npy";
}

std::vector<name_clash> find_name_clashes(const std::vector<std::string>& names, bool hdf5) {
  std::vector<name_clash> clashes;
  std::map<std::string, std::size_t> first_of;
  for (std::size_t i = 0; i < names.size(); ++i) {
    auto [it, fresh] = first_of.emplace(names[i], i);
    if (!fresh) clashes.push_back({it->second, i, false});
  }
  if (!hdf5) return clashes;
  for (const auto& [name, i] : first_of) {
    auto inside = first_of.lower_bound(name + "/");
    if (inside != first_of.end() && inside->first.starts_with(name + "/")) {
      clashes.push_back({i, inside->second, true});
    }
  }
  return clashes;
}

}  // namespace featpool
