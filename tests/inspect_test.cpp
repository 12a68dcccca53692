#include "featpool/inspect.hpp"

#include <sstream>

#include "test_files.hpp"
#include <doctest/doctest.h>

#include "featpool/npy.hpp"

namespace featpool {
namespace {

inspected_tensor sample_tensor() {
  inspected_tensor t;
  t.info.file = "f.h5";
  t.info.name = "/g/x";
  t.info.format = file_format::hdf5;
  t.info.shape = {2, 3};
  t.info.type = dtype::float32;
  t.info.dtype_string = "float32";
  t.info.stored_byte_order = byte_order::little;
  t.info.nbytes = 24;
  t.info.chunks = std::vector<std::uint64_t>{1, 3};
  t.info.filters = {"shuffle", "gzip"};
  t.attributes = nlohmann::json{{"unit", "m"}};
  return t;
}

TEST_CASE("inspect: shapes print as numpy prints them") {
  CHECK(shape_text({}) == "()");
  CHECK(shape_text({5}) == "(5,)");
  CHECK(shape_text({2, 3, 4}) == "(2, 3, 4)");
}

TEST_CASE("inspect: text rows are aligned under a header, attributes below their tensor") {
  auto t = sample_tensor();
  inspect_options options;
  options.attrs = true;
  CHECK(render_inspect_text({t}, options) ==
        "TENSOR     SHAPE   DTYPE    ENDIAN  ORDER  BYTES  CHUNKS  FILTERS\n"
        "f.h5:/g/x  (2, 3)  float32  little  C      24     (1, 3)  shuffle,gzip\n"
        "    @unit = \"m\"\n");
  CHECK(render_inspect_text({}, options).empty());
}

TEST_CASE("inspect: JSON records carry SPEC's keys in order, stats null when absent") {
  auto t = sample_tensor();
  t.stats = tensor_stats{1.0, 2.0, 1.5, 0.5, 0, 0};
  inspect_options options;
  options.stats = true;
  auto json = render_inspect_json({t}, options);
  CHECK(json.dump() ==
        R"([{"file":"f.h5","name":"/g/x","format":"hdf5","shape":[2,3],"dtype":"float32",)"
        R"("numeric":true,"byte_order":"little","order":"C","nbytes":24,"chunks":[1,3],)"
        R"("filters":["shuffle","gzip"],"min":1.0,"max":2.0,"mean":1.5,"std":0.5,)"
        R"("nan_count":0,"inf_count":0}])");
  t.stats.reset();
  t.info.type.reset();
  CHECK(render_inspect_json({t}, options)[0]["nan_count"].is_null());
}

TEST_CASE("inspect: a failing input is one line on errors and the rest is still listed") {
  testing::temp_dir dir;
  auto good = testing::write_file(dir.file("good.npy"),
                                  npy_header_bytes(dtype::float64, {2}) + std::string(16, '\0'));
  auto bad = testing::write_file(dir.file("bad.npy"), "garbage");
  std::ostringstream out, errors;
  int code = run_inspect({bad, good}, {}, out, errors);
  CHECK(code == 1);
  CHECK(errors.str() == "featpool: error: " + bad + ": not an NPY file (bad magic)\n");
  CHECK(out.str().find(good) != std::string::npos);
}

}  // namespace
}  // namespace featpool
