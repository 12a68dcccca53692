#include "torch_pickle.hpp"

#include <string>
#include <string_view>

#include <doctest/doctest.h>

#include "featpool/error.hpp"

namespace featpool::detail {
namespace {

using namespace std::literals;

// torch 1.13's data.pkl for torch.save({'a': t, 'v': [t.transpose(0, 2)[1:]]}) with
// t = torch.arange(24.).reshape(2, 3, 4): two views of one storage.
constexpr std::string_view kSaved =
    "\x80\x02}q\x00(X\x01\x00\x00\x00"
    "aq\x01"
    "ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storageq\x03"
    "ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x00\x30q\x05X\x03\x00\x00\x00"
    "cpuq\x06K\x18tq\x07QK\x00K\x02K\x03K\x04\x87q\x08K\x0cK\x04K\x01\x87q\x09\x89"
    "ccollections\nOrderedDict\nq\x0a)Rq\x0btq\x0cRq\x0dX\x01\x00\x00\x00vq\x0e]q\x0f"
    "h\x02((h\x03h\x04h\x05h\x06K\x18tq\x10QK\x01K\x03K\x03K\x02\x87q\x11K\x01K\x04K\x0c"
    "\x87q\x12\x89h\x0a)Rq\x13tq\x14Rq\x15"
    "au."sv;

torch_pickle read(std::string_view bytes) {
  return read_torch_pickle(std::as_bytes(std::span(bytes.data(), bytes.size())), "f.pt");
}

// The saved pickle with `from` replaced by `to` (once).
std::string edited(std::string_view from, std::string_view to) {
  std::string out(kSaved);
  auto at = out.find(from);
  REQUIRE(at != std::string::npos);
  return out.replace(at, from.size(), to);
}

TEST_CASE("torch_pickle: what torch.save writes, named by container path") {
  auto saved = read(kSaved);
  REQUIRE(saved.storages.size() == 1);
  CHECK(saved.storages[0].key == "0");
  CHECK(saved.storages[0].type == dtype::float32);
  CHECK(saved.storages[0].type_name == "torch.FloatStorage");
  CHECK(saved.storages[0].numel == 24);
  REQUIRE(saved.tensors.size() == 2);
  CHECK(saved.tensors[0].name == "a");
  CHECK(saved.tensors[0].offset == 0);
  CHECK(saved.tensors[0].shape == std::vector<std::uint64_t>{2, 3, 4});
  CHECK(saved.tensors[0].strides == std::vector<std::uint64_t>{12, 4, 1});
  CHECK(saved.tensors[1].name == "v.0");
  CHECK(saved.tensors[1].storage == 0);
  CHECK(saved.tensors[1].offset == 1);
  CHECK(saved.tensors[1].shape == std::vector<std::uint64_t>{3, 3, 2});
  CHECK(saved.tensors[1].strides == std::vector<std::uint64_t>{1, 4, 12});
}

TEST_CASE("torch_pickle: a tensor saved alone has an empty name; other values are skipped") {
  auto alone = read(
      "\x80\x02\x63torch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
      "ctorch\nHalfStorage\nX\x01\x00\x00\x00\x37X\x03\x00\x00\x00\x63puK\x02tQK\x00K\x02\x85"
      "K\x01\x85\x88\x63\x63ollections\nOrderedDict\n)RtR."sv);
  REQUIRE(alone.tensors.size() == 1);
  CHECK(alone.tensors[0].name.empty());
  CHECK(alone.storages[0].type == dtype::float16);
  CHECK(read("\x80\x02}(X\x01\x00\x00\x00nK\x03X\x01\x00\x00\x00sNu."sv).tensors.empty());
}

TEST_CASE("torch_pickle: everything else is refused, naming what") {
  struct row {
    const char* what;
    std::string pickle;
    const char* message;
  };
  const row rows[] = {
      {"a global outside the allowed set", "\x80\x02\x63os\nsystem\nX\x02\x00\x00\x00lsR."s,
       "f.pt: pickle global os.system is not allowed (featpool reads only tensors and containers "
       "of tensors)"},
      {"a global named on the stack",
       "\x80\x02X\x08\x00\x00\x00\x62uiltinsX\x04\x00\x00\x00\x65val\x93."s,
       "f.pt: pickle global builtins.eval is not allowed (featpool reads only tensors and "
       "containers of tensors)"},
      {"an opcode torch.save never writes", "\x80\x02}(b."s,
       "f.pt: pickle opcode 'b' (0x62) at byte 4 is not allowed (featpool reads only what "
       "torch.save writes for tensors and containers of tensors)"},
      {"an allowed class called", "\x80\x02\x63torch\nFloatStorage\n)R."s,
       "f.pt: pickle global torch.FloatStorage is not callable here (only "
       "torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and "
       "collections.OrderedDict are)"},
      {"no STOP", "\x80\x02}"s,
       "f.pt: truncated pickle: data.pkl ends inside the opcode at byte 3"},
      {"a string longer than the pickle", "\x80\x02X\xff\xff\xff\x7f"s,
       "f.pt: truncated pickle: data.pkl ends inside the opcode at byte 2"},
      {"bytes after STOP", "\x80\x02N.N"s, "f.pt: malformed pickle: data follows its STOP opcode"},
      {"an empty stack popped", "\x80\x02\x61."s,
       "f.pt: malformed pickle: the opcode at byte 2 pops an empty stack"},
      {"a memo entry never stored", "\x80\x02h\x05."s,
       "f.pt: malformed pickle: the opcode at byte 2 reads memo entry 5, never stored"},
      {"a list inside itself", "\x80\x02]q\x00h\x00\x61."s,
       "f.pt: containers nested more than 100 deep (or containing themselves)"},
      {"an unknown protocol", "\x80\x09N."s, "f.pt: pickle protocol 9 is not supported"},
      {"a wide integer", "\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09."s,
       "f.pt: an integer of 9 bytes in the pickle is too large"},
      {"a float dict key", "\x80\x02}(G\x3f\xf0\x00\x00\x00\x00\x00\x00Nu."s,
       "f.pt: a dict key is a float; tensors are named by string and int keys only"},
      {"a negative stride", edited("K\x0cK\x04K\x01"s, "K\x0cJ\xff\xff\xff\xffK\x01"sv),
       "f.pt: a tensor's stride is negative (-1)"},
      {"sizes and strides of different ranks", edited("K\x0cK\x04K\x01\x87"s, "K\x0cK\x04\x86"sv),
       "f.pt: a tensor has 3 sizes and 2 strides"},
      {"a storage type outside the allowed set",
       edited("ctorch\nFloatStorage\n", "ctorch\nComplexFloatStorage\n"),
       "f.pt: pickle global torch.ComplexFloatStorage is not allowed (featpool reads only "
       "tensors and containers of tensors)"},
      {"a persistent id that is no storage",
       edited("X\x07\x00\x00\x00storage"s, "X\x07\x00\x00\x00tensors"sv),
       "f.pt: malformed pickle: a persistent id is not ('storage', type, key, location, size)"},
      {"a storage key that is a path",
       edited("X\x01\x00\x00\x00\x30q\x05"s, "X\x03\x00\x00\x00../q\x05"sv),
       "f.pt: storage key \"../\" is not a record name"},
      {"one storage described twice", edited("h\x06K\x18t"s, "h\x06K\x19t"sv),
       "f.pt: storage '0' is described twice: as torch.FloatStorage of 24 elements and as "
       "torch.FloatStorage of 25"},
      {"a tensor with too few arguments", edited("\x89h\x0a)Rq\x13"s, "h\x0a)Rq\x13"sv),
       "f.pt: torch._utils._rebuild_tensor_v2 takes 6 or 7 arguments, the pickle gives 5"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.what);
    CHECK_THROWS_WITH_AS(read(r.pickle), r.message, error);
  }
}

TEST_CASE("torch_pickle: cut at every length, a clean error") {
  for (std::size_t length = 0; length < kSaved.size(); ++length) {
    CAPTURE(length);
    CHECK_THROWS_AS(read(kSaved.substr(0, length)), error);
  }
}

}  // namespace
}  // namespace featpool::detail
