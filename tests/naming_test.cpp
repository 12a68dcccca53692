#include "featpool/naming.hpp"

#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace featpool {
namespace {

namespace fs = std::filesystem;

input_file file_argument(std::string path) {
  input_file file;
  file.path = std::move(path);
  file.display = file.path;
  return file;
}

// A file found under the directory argument `root`, as expand_input lists it.
input_file found_under(std::string root, const std::string& relative) {
  input_file file;
  file.path = (fs::path(root) / relative).string();
  file.display = file.path;
  file.root = std::move(root);
  return file;
}

input_file standard_input() {
  input_file file = file_argument("-");
  file.stream = true;
  return file;
}

// Clashes as "1=3" (3 repeats the name of 1) or "1>3" (3 is inside 1).
std::vector<std::string> clashes(const std::vector<std::string>& names, bool hdf5) {
  std::vector<std::string> out;
  for (const auto& clash : find_name_clashes(names, hdf5)) {
    out.push_back(std::to_string(clash.first) + (clash.group ? ">" : "=") +
                  std::to_string(clash.second));
  }
  return out;
}

using strings = std::vector<std::string>;

TEST_CASE("naming: files under a directory argument are named from it") {
  auto stems = relative_stems({found_under("run", "a/x.npy"), found_under("run", "b/y.h5"),
                               found_under("run", "labels.npz")});
  CHECK(stems == strings{"a/x", "b/y", "labels"});
}

TEST_CASE("naming: a directory argument's spelling does not change the stems") {
  CHECK(relative_stems({found_under("run/", "a/x.npy")}) == strings{"a/x"});
  CHECK(relative_stems({found_under("./run", "a/x.npy")}) == strings{"a/x"});
  CHECK(relative_stems({found_under(".", "a/x.npy")}) == strings{"a/x"});
  CHECK(relative_stems({found_under("/data/run", "a/x.npy")}) == strings{"a/x"});
}

TEST_CASE("naming: several directory arguments are each their own root") {
  auto stems = relative_stems({found_under("/data/one", "x.npy"), found_under("two", "x.npy"),
                               found_under("/data/one", "deep/er/z.hdf5")});
  CHECK(stems == strings{"x", "x", "deep/er/z"});
}

TEST_CASE("naming: file arguments are named from their deepest common folder") {
  auto stems =
      relative_stems({file_argument("/data/run/a/x.npy"), file_argument("/data/run/b/y.npz")});
  CHECK(stems == strings{"a/x", "b/y"});
  // One file in the common folder itself, one below it.
  stems = relative_stems(
      {file_argument("/data/run/x.npy"), file_argument("/data/run/sub/deeper/y.h5")});
  CHECK(stems == strings{"x", "sub/deeper/y"});
  // Nothing in common but the filesystem root.
  stems = relative_stems({file_argument("/a/x.npy"), file_argument("/b/y.npy")});
  CHECK(stems == strings{"a/x", "b/y"});
}

TEST_CASE("naming: a lone file argument is named by its file name") {
  CHECK(relative_stems({file_argument("/data/run/a/x.npy")}) == strings{"x"});
  CHECK(relative_stems({file_argument("x.npy")}) == strings{"x"});
  // Only the last extension goes.
  CHECK(relative_stems({file_argument("/data/x.feat.npy")}) == strings{"x.feat"});
}

TEST_CASE("naming: relative and unnormalised file arguments") {
  auto stems = relative_stems({file_argument("run/a/x.npy"), file_argument("./run/b/../b/y.npy")});
  CHECK(stems == strings{"a/x", "b/y"});
  // A relative and an absolute spelling of the same folder.
  auto here = fs::current_path();
  stems = relative_stems(
      {file_argument("run/a/x.npy"), file_argument((here / "run" / "c" / "z.npy").string())});
  CHECK(stems == strings{"a/x", "c/z"});
}

TEST_CASE("naming: standard input is stdin") {
  CHECK(relative_stems({standard_input()}) == strings{"stdin"});
  auto stems =
      relative_stems({standard_input(), file_argument("/data/run/a/x.npy"),
                      file_argument("/data/other/z.npy"), found_under("/elsewhere", "q/w.npy")});
  // The common folder of file arguments is /data; "-" and directory
  // arguments take no part in it.
  CHECK(stems == strings{"stdin", "run/a/x", "other/z", "q/w"});
}

TEST_CASE("naming: one discovered file keeps the tensor's own name") {
  CHECK(collected_name("a/x", true, "/feat/conv1", 1) == "/feat/conv1");
  CHECK(collected_name("a/x", true, "conv1", 1) == "conv1");
  CHECK(collected_name("x", false, "x", 1) == "x");
}

TEST_CASE("naming: several files name a tensor /<stem>/<name>") {
  CHECK(collected_name("a/x", true, "/conv1", 2) == "/a/x/conv1");
  CHECK(collected_name("a/x", true, "conv1", 2) == "/a/x/conv1");
  CHECK(collected_name("a/x", true, "/block/conv1", 7) == "/a/x/block/conv1");
  CHECK(collected_name("x", true, "/y", 2) == "/x/y");
}

TEST_CASE("naming: several files name an NPY file's tensor /<stem>") {
  CHECK(collected_name("a/x", false, "x", 2) == "/a/x");
  CHECK(collected_name("stdin", false, "stdin", 3) == "/stdin");
}

TEST_CASE("naming: NPZ member names have no leading slash and end in .npy") {
  CHECK(name_in(output_format::npz, "/a/x/conv1") == "a/x/conv1.npy");
  CHECK(name_in(output_format::npz, "x") == "x.npy");
  CHECK(name_in(output_format::npz, collected_name("a/x", true, "/conv1", 2)) == "a/x/conv1.npy");
}

TEST_CASE("naming: HDF5 names have exactly one leading slash") {
  CHECK(name_in(output_format::hdf5, "x") == "/x");
  CHECK(name_in(output_format::hdf5, "/x") == "/x");
  CHECK(name_in(output_format::hdf5, "a/x/conv1") == "/a/x/conv1");
  CHECK(name_in(output_format::hdf5, collected_name("a/x", false, "x", 2)) == "/a/x");
}

TEST_CASE("naming: NPY outputs keep the name as it is") {
  CHECK(name_in(output_format::npy, "x") == "x");
  CHECK(name_in(output_format::npy, "/a/x") == "/a/x");
}

TEST_CASE("naming: extension of each output format") {
  CHECK(extension_of(output_format::npy) == ".npy");
  CHECK(extension_of(output_format::npz) == ".npz");
  CHECK(extension_of(output_format::hdf5) == ".h5");
}

TEST_CASE("naming: distinct names do not clash") {
  CHECK(clashes({}, true).empty());
  CHECK(clashes({"/a"}, true).empty());
  CHECK(clashes({"/a", "/b", "/c/d"}, true).empty());
  CHECK(clashes({"a.npy", "b.npy"}, false).empty());
}

TEST_CASE("naming: a repeated name clashes with its first use") {
  CHECK(clashes({"/a", "/b", "/a"}, false) == strings{"0=2"});
  CHECK(clashes({"/a", "/b", "/a"}, true) == strings{"0=2"});
  CHECK(clashes({"x.npy", "x.npy", "x.npy"}, false) == strings{"0=1", "0=2"});
  CHECK(clashes({"/b", "/a", "/b", "/a"}, false) == strings{"0=2", "1=3"});
}

TEST_CASE("naming: in HDF5 a name inside another name is a group clash") {
  CHECK(clashes({"/a", "/a/b"}, true) == strings{"0>1"});
  CHECK(clashes({"/a/b", "/a"}, true) == strings{"1>0"});
  CHECK(clashes({"/a", "/a/b/c"}, true) == strings{"0>1"});
  CHECK(clashes({"/x", "/a", "/a/b"}, true) == strings{"1>2"});
}

TEST_CASE("naming: in HDF5 a name that only starts like another does not clash") {
  CHECK(clashes({"/a", "/ab"}, true).empty());
  CHECK(clashes({"/a", "/ab/c"}, true).empty());
  // '-' and '.' sort before '/', so they sit between "/a" and "/a/...".
  CHECK(clashes({"/a", "/a-b", "/a.b"}, true).empty());
  CHECK(clashes({"/a", "/a-b", "/a.b", "/a/c"}, true) == strings{"0>3"});
}

TEST_CASE("naming: a repeated name and a group clash are both reported") {
  CHECK(clashes({"/a", "/a", "/a/b"}, true) == strings{"0=1", "0>2"});
}

TEST_CASE("naming: without HDF5 there are no group clashes") {
  CHECK(clashes({"/a", "/a/b"}, false).empty());
  CHECK(clashes({"a.npy", "a.npy/b.npy"}, false).empty());
}

}  // namespace
}  // namespace featpool
