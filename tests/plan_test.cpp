#include "featpool/plan.hpp"

#include <filesystem>

#include "test_files.hpp"
#include <doctest/doctest.h>

#include "featpool/error.hpp"
#include "featpool/npy.hpp"

namespace featpool {
namespace {

namespace fs = std::filesystem;

std::string npy(dtype type, std::vector<std::uint64_t> shape) {
  std::uint64_t count = 1;
  for (auto e : shape) count *= e;
  return npy_header_bytes(type, shape) + std::string(count * dtype_size(type), '\0');
}

struct fixture {
  testing::temp_dir dir;
  fixture() {
    fs::create_directories(dir.path() / "run" / "a");
    fs::create_directories(dir.path() / "run" / "b");
    testing::write_file(dir.file("run/a/x.npy"), npy(dtype::float32, {2, 3, 4, 4}));
    testing::write_file(dir.file("run/b/y.npy"), npy(dtype::float32, {2, 3, 4, 4}));
    testing::write_file(dir.file("run/labels.npy"), npy(dtype::int64, {2}));
  }
  pool_options options(std::vector<std::string> inputs, std::string output) const {
    pool_options o;
    o.inputs = std::move(inputs);
    o.output = dir.file(output);
    return o;
  }
};

std::vector<std::string> names(const plan& p) {
  std::vector<std::string> out;
  for (const auto& t : p.tensors) out.push_back(t.output_name);
  return out;
}

TEST_CASE("plan: one input file keeps the tensor's own name") {
  fixture f;
  auto p = make_plan(f.options({f.dir.file("run/a/x.npy")}, "o.h5"));
  CHECK(names(p) == std::vector<std::string>{"/x"});
  p = make_plan(f.options({f.dir.file("run/a/x.npy")}, "o.npz"));
  CHECK(names(p) == std::vector<std::string>{"x.npy"});
}

TEST_CASE("plan: several files are named by their path from their common parent") {
  fixture f;
  auto p = make_plan(f.options({f.dir.file("run/a/x.npy"), f.dir.file("run/b/y.npy")}, "o.h5"));
  CHECK(names(p) == std::vector<std::string>{"/a/x", "/b/y"});
  p = make_plan(f.options({f.dir.file("run")}, "o.npz"));
  // labels (N,) does not fit a default layout: skipped, and not named.
  CHECK(names(p) == std::vector<std::string>{"a/x.npy", "b/y.npy", ""});
  CHECK(p.tensors[2].record.status == tensor_status::skipped);
  CHECK(p.tensors[2].record.message == "rank 1 has no default layout; pass --layout");
}

TEST_CASE("plan: a directory output mirrors the input tree") {
  fixture f;
  auto p = make_plan(f.options({f.dir.file("run")}, "out/"));
  REQUIRE(p.tensors.size() == 3);
  CHECK(p.tensors[0].output_path == f.dir.file("out/a/x.npy"));
  CHECK(p.tensors[1].output_path == f.dir.file("out/b/y.npy"));
  auto o = f.options({f.dir.file("run")}, "out/");
  o.format = output_format::hdf5;
  p = make_plan(o);
  CHECK(p.tensors[0].output_path == f.dir.file("out/a/x.h5"));
  CHECK(p.tensors[0].output_name == "/x");
}

TEST_CASE("plan: a tensor named explicitly that does not fit is an error") {
  fixture f;
  auto p = make_plan(f.options({f.dir.file("run/labels.npy")}, "o.npy"));
  CHECK(p.tensors[0].record.status == tensor_status::failed);
  CHECK(p.has_failures());
  auto o = f.options({f.dir.file("run/a/x.npy")}, "o.npy");
  o.sizes = {parse_size("2x2x2")};
  p = make_plan(o);
  CHECK(p.tensors[0].record.message == "--size 2x2x2 gives 3 sizes for 2 spatial axes");
}

TEST_CASE("plan: outputs, shapes and dtypes follow the request") {
  fixture f;
  auto o = f.options({f.dir.file("run/a/x.npy")}, "o.npy");
  o.sizes = {parse_size("_x2")};
  o.op = pool_op::max;
  o.flatten = true;
  auto p = make_plan(o);
  const auto& r = p.tensors[0].record;
  CHECK(r.output_shape == std::vector<std::uint64_t>{2, 24});
  CHECK(r.output_dtype == "float32");
  CHECK(r.layout == "NCHW");
  CHECK(r.size == std::vector<std::optional<std::uint64_t>>{4, 2});
  CHECK(r.destination == f.dir.file("o.npy"));
}

TEST_CASE("plan: collisions, existing outputs and outputs that are inputs") {
  fixture f;
  fs::create_directories(f.dir.path() / "other" / "a");
  testing::write_file(f.dir.file("other/a/x.npy"), npy(dtype::float32, {1, 1, 2, 2}));
  auto p = make_plan(f.options({f.dir.file("run"), f.dir.file("other")}, "o.h5"));
  int collided = 0;
  for (const auto& t : p.tensors) {
    if (t.record.message.starts_with("output name")) ++collided;
  }
  CHECK(collided == 2);

  testing::write_file(f.dir.file("o.npy"), "existing");
  p = make_plan(f.options({f.dir.file("run/a/x.npy")}, "o.npy"));
  CHECK(p.tensors[0].record.message ==
        "output " + f.dir.file("o.npy") + " exists; pass --force to overwrite it");
  auto o = f.options({f.dir.file("run/a/x.npy")}, "run/a/x.npy");
  o.force = true;
  p = make_plan(o);
  CHECK(p.tensors[0].record.message ==
        "output " + f.dir.file("run/a/x.npy") + " is one of the inputs");
}

TEST_CASE("plan: HDF5 names that would be both a dataset and a group collide") {
  testing::temp_dir dir;
  fs::create_directories(dir.path() / "a");
  testing::write_file(dir.file("a.npy"), npy(dtype::float32, {1, 1, 2, 2}));
  testing::write_file(dir.file("a/b.npy"), npy(dtype::float32, {1, 1, 2, 2}));
  pool_options o;
  o.inputs = {dir.path().string()};
  o.output = dir.file("o.h5");
  auto p = make_plan(o);
  CHECK(p.tensors[0].record.message ==
        "output name /a would have to be a dataset and a group, as /a/b is inside it");
}

TEST_CASE("plan: CSV rows are samples of one width, flattened, labelled with their tensor") {
  fixture f;
  testing::write_file(f.dir.file("run/wide.npy"), npy(dtype::float32, {2, 5, 4, 4}));
  auto o = f.options({f.dir.file("run/a/x.npy"), f.dir.file("run/wide.npy")}, "o.csv");
  o.flatten = true;
  auto p = make_plan(o);
  REQUIRE(p.tensors.size() == 2);
  CHECK(p.tensors[0].record.status == tensor_status::ok);
  CHECK(p.tensors[0].output_name == f.dir.file("run/a/x.npy"));
  CHECK(p.tensors[0].record.destination == f.dir.file("o.csv"));
  CHECK(p.tensors[1].record.status == tensor_status::failed);
  CHECK(p.tensors[1].record.message == "has 5 features per row, but " + f.dir.file("run/a/x.npy") +
                                           ", the first in " + f.dir.file("o.csv") + ", has 3");

  // Without --flatten, a sample of at most two axes is still one row.
  testing::write_file(f.dir.file("run/tokens.npy"), npy(dtype::float32, {2, 3, 4}));
  o = f.options({f.dir.file("run/tokens.npy")}, "o.tsv");
  o.sizes = {parse_size("2")};
  p = make_plan(o);
  CHECK(p.tensors[0].flatten);
  CHECK(p.tensors[0].record.output_shape == std::vector<std::uint64_t>{2, 6});
  o = f.options({f.dir.file("run/a/x.npy")}, "o.tsv");
  p = make_plan(o);
  CHECK(p.tensors[0].record.status == tensor_status::failed);
  CHECK(p.tensors[0].record.message ==
        "a row of " + f.dir.file("o.tsv") +
            " holds a sample of at most 2 axes, and this tensor's samples are (3, 1, 1); pass "
            "--flatten to write each as one row of 3 values");
}

TEST_CASE("plan: the output's kind is told from its name") {
  CHECK(classify_output("-", std::nullopt).kind == output_kind::standard_output);
  CHECK(classify_output("x/", std::nullopt).kind == output_kind::directory);
  CHECK(classify_output("x.hdf5", std::nullopt).format == output_format::hdf5);
  CHECK(classify_output("x.csv", std::nullopt).format == output_format::csv);
  CHECK(classify_output("x.tsv", std::nullopt).format == output_format::tsv);
  CHECK(classify_output("x.safetensors", std::nullopt).format == output_format::safetensors);
  CHECK_THROWS_WITH_AS(classify_output("x.txt", std::nullopt),
                       "-o: 'x.txt': unknown output extension; use .npy, .npz, .h5, .hdf5, "
                       ".safetensors, .csv, .tsv, a directory or -",
                       usage_error);
  CHECK_THROWS_WITH_AS(classify_output("x.npy", output_format::npz),
                       "--format applies only to directory outputs", usage_error);
}

}  // namespace
}  // namespace featpool
