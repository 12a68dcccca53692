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

TEST_CASE("inspect: --hist implies --stats, its column last and its key after inf_count") {
  auto t = sample_tensor();
  t.stats = tensor_stats{1.0, 2.0, 1.5, 0.5, 0, 0};
  // Empty bins are spaces, the trailing ones too: the cell is always 16 characters.
  t.hist = histogram_counts{0, 4, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
  auto none = sample_tensor();
  none.info.name = "/g/s";
  none.info.type.reset();
  inspect_options options;
  options.hist = true;
  CHECK(render_inspect_text({t, none}, options) ==
        "TENSOR     SHAPE   DTYPE    ENDIAN  ORDER  BYTES  MIN  MAX  MEAN  STD  NAN  INF  CHUNKS  "
        "FILTERS       HIST\n"
        "f.h5:/g/x  (2, 3)  float32  little  C      24     1    2    1.5   0.5  0    0    (1, 3)  "
        "shuffle,gzip   \u2588      \u2582       \n"
        "f.h5:/g/s  (2, 3)  float32  little  C      24     -    -    -     -    -    -    (1, 3)  "
        "shuffle,gzip  -\n");
  auto json = render_inspect_json({t, none}, options);
  CHECK(json[0].dump().find(R"("inf_count":0,"hist":[0,4,0,0,0,0,0,0,1,0,0,0,0,0,0,0]})") !=
        std::string::npos);
  CHECK(json[1]["hist"].is_null());
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
