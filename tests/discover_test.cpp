#include "featpool/discover.hpp"

#include <filesystem>

#include "test_files.hpp"
#include <doctest/doctest.h>

#include "featpool/error.hpp"
#include "featpool/npy.hpp"

namespace featpool {
namespace {

tensor_info named(std::string name) {
  tensor_info info;
  info.name = std::move(name);
  return info;
}

TEST_CASE("discover: globs do not cross '/' and the leading '/' is optional") {
  CHECK(name_matches("/layer*/act", "/layer4/act"));
  CHECK(name_matches("layer*/act", "/layer4/act"));
  CHECK_FALSE(name_matches("/*/act", "/a/b/act"));
  CHECK(name_matches("/*/*/act", "/a/b/act"));
  CHECK(name_matches("conv?", "/block/conv5"));  // no '/': the last component
  CHECK(name_matches("conv5", "conv5"));
  CHECK(name_matches("[ab]x", "/g/bx"));
  CHECK_FALSE(name_matches("conv", "/block/conv5"));
  CHECK(is_glob("a*"));
  CHECK(is_glob("a[0]"));
  CHECK_FALSE(is_glob("/layer4/act"));
}

TEST_CASE("discover: FILE:NAME selects by full path; --name by last component") {
  std::vector<tensor_info> tensors{named("/block1/conv"), named("/block2/conv"),
                                   named("/layer4/act"), named("/layer4/deep/act")};
  input_file input;
  input.display = "f.h5";
  input.selector = "layer4/act";
  CHECK(select_tensors(tensors, input, {}) == std::vector<std::size_t>{2});
  input.selector = "/block*/conv";
  CHECK(select_tensors(tensors, input, {}) == std::vector<std::size_t>{0, 1});
  input.selector.reset();
  CHECK(select_tensors(tensors, input, {"act"}) == std::vector<std::size_t>{2, 3});
  CHECK(select_tensors(tensors, input, {"/layer4/*"}) == std::vector<std::size_t>{2});
  CHECK(select_tensors(tensors, input, {"nothing"}).empty());
}

TEST_CASE("discover: a name that matches nothing is an error, with a hint when one is close") {
  std::vector<tensor_info> tensors{named("/layer4/act"), named("/labels")};
  input_file input;
  input.display = "f.h5";
  input.selector = "/layer4/akt";
  CHECK_THROWS_WITH_AS(select_tensors(tensors, input, {}),
                       "f.h5: no tensor named '/layer4/akt' (did you mean '/layer4/act'?)", error);
  input.selector = "/completely/different";
  CHECK_THROWS_WITH_AS(select_tensors(tensors, input, {}),
                       "f.h5: no tensor named '/completely/different'", error);
  input.selector = "/x*";
  CHECK_THROWS_WITH_AS(select_tensors(tensors, input, {}), "f.h5: no tensor matches '/x*'", error);
}

TEST_CASE("discover: arguments resolve to files, FILE:NAME, directories and streams") {
  testing::temp_dir dir;
  auto npy = npy_header_bytes(dtype::uint8, {1}) + std::string(1, '\0');
  std::filesystem::create_directories(dir.path() / "sub");
  for (const char* name :
       {"b.npy", "a.npz", "sub/c.h5", "sub/d.hdf5", "e.txt", ".hidden.npy", "with:colon.npy"}) {
    testing::write_file(dir.file(name), npy);
  }

  auto found = expand_input(dir.path().string());
  std::vector<std::string> names;
  for (const auto& f : found) {
    names.push_back(std::filesystem::path(f.path).lexically_relative(dir.path()).string());
    CHECK(f.root == dir.path().string());
  }
  CHECK(names ==
        std::vector<std::string>{"a.npz", "b.npy", "sub/c.h5", "sub/d.hdf5", "with:colon.npy"});

  auto reference = expand_input(dir.file("a.npz") + ":conv5");
  REQUIRE(reference.size() == 1);
  CHECK(reference[0].path == dir.file("a.npz"));
  CHECK(reference[0].selector == "conv5");

  // A file whose own name holds ':' is that file, not a reference.
  auto colon = expand_input(dir.file("with:colon.npy"));
  CHECK_FALSE(colon[0].selector.has_value());

  CHECK(expand_input("-")[0].stream);
  CHECK_THROWS_WITH_AS(expand_input(dir.file("missing.npy")),
                       (dir.file("missing.npy") + ": no such file or directory").c_str(), error);
  CHECK_THROWS_WITH_AS(expand_input(dir.file("b.npy") + ":"),
                       (dir.file("b.npy") + ": empty tensor name after ':'").c_str(), error);
}

TEST_CASE("discover: files are opened by their contents, not their extension") {
  testing::temp_dir dir;
  auto npy = npy_header_bytes(dtype::int16, {2, 2}) + std::string(8, '\0');
  input_file input;
  input.path = testing::write_file(dir.file("really_npy.h5"), npy);
  input.display = input.path;
  CHECK(open_input(input)->tensors().at(0).shape == std::vector<std::uint64_t>{2, 2});

  input.path = testing::write_file(dir.file("empty.npy"), "");
  input.display = input.path;
  CHECK_THROWS_WITH_AS(open_input(input), (input.path + ": empty file").c_str(), error);

  input.path = testing::write_file(dir.file("text.npz"), "hello");
  input.display = input.path;
  CHECK_THROWS_WITH_AS(open_input(input),
                       (input.path + ": not an NPZ file (no zip signature)").c_str(), error);

  input.path = testing::write_file(dir.file("text.bin"), "hello");
  input.display = input.path;
  CHECK_THROWS_WITH_AS(
      open_input(input),
      (input.path + ": not an NPY, NPZ, HDF5, safetensors or PyTorch file").c_str(), error);
}

}  // namespace
}  // namespace featpool
