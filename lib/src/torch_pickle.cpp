// A restricted unpickler for torch.save's data.pkl (see torch_pickle.hpp).
//
// Pickle is a stack machine; the opcodes torch.save emits (protocol 2) build
// dicts, lists and tuples, push strings and numbers, name globals, call them
// (REDUCE) and turn persistent ids into storages (BINPERSID). Here a GLOBAL
// is checked against the allow-list as soon as it is read, and REDUCE calls
// only the three allowed callables, by interpreting their arguments: nothing
// is ever imported or run. Values live in one arena and refer to each other
// by index, so the shared and even self-referencing containers a malicious
// pickle can make through the memo cost no more than their bytes, and are
// caught by the depth limit when walked.
//
// Every count a pickle gives is checked against the bytes left before it is
// used, and the machine's work is linear in the pickle's length, so no input
// can make it allocate or loop more than its size allows.

#include "torch_pickle.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "featpool/error.hpp"
#include "featpool/source.hpp"

namespace featpool::detail {
namespace {

// Values a pickle may hold. Objects past these limits are no checkpoint
// torch.save wrote: a state dict of 100 000 tensors needs about 1.5 million.
constexpr std::size_t kMaxValues = std::size_t{1} << 22;
constexpr std::size_t kMaxDepth = 100;         // containers inside containers
constexpr std::size_t kMaxStringBytes = 4096;  // keys, names, locations
// Walking the containers visits each value once, shared tensors once per
// name; a pickle whose containers hold each other many times over (a list
// holding one list twice, that one another twice, ...) would need
// exponentially many visits.
constexpr std::size_t kMaxVisits = std::size_t{1} << 23;

// The storage classes torch.save names in persistent ids, and their types.
struct storage_class {
  std::string_view name;
  dtype type;
};
constexpr std::array kStorageClasses{
    storage_class{"torch.BoolStorage", dtype::bool_},
    storage_class{"torch.ByteStorage", dtype::uint8},
    storage_class{"torch.CharStorage", dtype::int8},
    storage_class{"torch.ShortStorage", dtype::int16},
    storage_class{"torch.IntStorage", dtype::int32},
    storage_class{"torch.LongStorage", dtype::int64},
    storage_class{"torch.HalfStorage", dtype::float16},
    storage_class{"torch.BFloat16Storage", dtype::bfloat16},
    storage_class{"torch.FloatStorage", dtype::float32},
    storage_class{"torch.DoubleStorage", dtype::float64},
};

constexpr std::string_view kRebuildTensor = "torch._utils._rebuild_tensor_v2";
constexpr std::string_view kRebuildParameter = "torch._utils._rebuild_parameter";
constexpr std::string_view kOrderedDict = "collections.OrderedDict";

bool allowed_global(std::string_view name) {
  if (name == kRebuildTensor || name == kRebuildParameter || name == kOrderedDict) return true;
  for (const auto& c : kStorageClasses) {
    if (c.name == name) return true;
  }
  return false;
}

enum class kind : std::uint8_t {
  none,
  boolean,
  integer,
  floating,
  string,
  tuple,
  list,
  dict,
  global,   // text holds "module.name"
  storage,  // integer holds the index into torch_pickle::storages
  tensor,   // integer holds the index into the unnamed tensors
};

std::string_view kind_name(kind k) {
  switch (k) {
    case kind::none:
      return "None";
    case kind::boolean:
      return "a bool";
    case kind::integer:
      return "an int";
    case kind::floating:
      return "a float";
    case kind::string:
      return "a string";
    case kind::tuple:
      return "a tuple";
    case kind::list:
      return "a list";
    case kind::dict:
      return "a dict";
    case kind::global:
      return "a global";
    case kind::storage:
      return "a storage";
    case kind::tensor:
      break;
  }
  return "a tensor";
}

using value_id = std::uint32_t;

struct value {
  kind type = kind::none;
  std::int64_t integer = 0;  // also a bool's 0 or 1
  double floating = 0;
  std::string text;
  std::vector<value_id> items;  // tuple and list elements; a dict's keys and values alternating
};

class unpickler {
 public:
  unpickler(std::span<const std::byte> bytes, const std::string& file)
      : bytes_(bytes), file_(file) {}

  torch_pickle run() {
    value_id root = execute();
    name_tensors(root, "", 0);
    return std::move(result_);
  }

 private:
  [[noreturn]] void fail(const std::string& reason) const { throw error(file_, reason); }

  // --- reading the bytes ---------------------------------------------------

  std::span<const std::byte> take(std::uint64_t count) {
    if (count > bytes_.size() - at_) {
      fail(fmt::format("truncated pickle: data.pkl ends inside the opcode at byte {}", opcode_at_));
    }
    auto part = bytes_.subspan(at_, static_cast<std::size_t>(count));
    at_ += static_cast<std::size_t>(count);
    return part;
  }

  std::uint64_t little_endian(std::size_t count) {
    auto part = take(count);
    std::uint64_t out = 0;
    for (std::size_t i = count; i-- > 0;)
      out = (out << 8) | std::to_integer<std::uint64_t>(part[i]);
    return out;
  }

  std::string text(std::uint64_t count) {
    if (count > kMaxStringBytes) {
      // Checked against the bytes left first: a length past the end is truncation.
      if (count > bytes_.size() - at_) take(count);
      fail(fmt::format("a string of {} bytes in the pickle; torch.save writes none over {}", count,
                       kMaxStringBytes));
    }
    auto part = take(count);
    return {reinterpret_cast<const char*>(part.data()), part.size()};
  }

  // A GLOBAL's "module\nname\n" line.
  std::string line() {
    std::size_t start = at_;
    while (at_ < bytes_.size() && bytes_[at_] != std::byte{'\n'}) {
      if (at_ - start >= kMaxStringBytes) fail("a global name in the pickle is too long");
      ++at_;
    }
    if (at_ == bytes_.size()) take(1);  // truncated
    std::string out(reinterpret_cast<const char*>(bytes_.data() + start), at_ - start);
    ++at_;
    return out;
  }

  // --- values --------------------------------------------------------------

  value_id make(value v) {
    if (values_.size() >= kMaxValues) {
      fail(fmt::format("the pickle holds more than {} objects", kMaxValues));
    }
    values_.push_back(std::move(v));
    return static_cast<value_id>(values_.size() - 1);
  }

  value_id make_integer(std::int64_t n) { return make(value{kind::integer, n, 0, {}, {}}); }

  void push(value_id id) { stack_.push_back(id); }

  value_id pop() {
    if (stack_.size() <= stack_floor()) fail(malformed("pops an empty stack"));
    value_id id = stack_.back();
    stack_.pop_back();
    return id;
  }

  value_id top() {
    if (stack_.size() <= stack_floor()) fail(malformed("reads an empty stack"));
    return stack_.back();
  }

  std::size_t stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }

  // The values pushed since the last MARK, which is removed.
  std::vector<value_id> pop_to_mark() {
    if (marks_.empty()) fail(malformed("needs a MARK and there is none"));
    std::size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<value_id> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }

  std::string malformed(std::string_view what) const {
    return fmt::format("malformed pickle: the opcode at byte {} {}", opcode_at_, what);
  }

  const value& at(value_id id) const { return values_[id]; }

  value& expect(value_id id, kind k, std::string_view role) {
    if (values_[id].type != k) {
      fail(fmt::format("malformed pickle: {} is {}, not {}", role, kind_name(values_[id].type),
                       kind_name(k)));
    }
    return values_[id];
  }

  std::uint64_t expect_count(value_id id, std::string_view role) {
    const value& v = expect(id, kind::integer, role);
    if (v.integer < 0) fail(fmt::format("{} is negative ({})", role, v.integer));
    return static_cast<std::uint64_t>(v.integer);
  }

  // --- the machine ---------------------------------------------------------

  value_id execute() {
    while (true) {
      opcode_at_ = at_;
      auto op = std::to_integer<unsigned char>(take(1)[0]);
      switch (op) {
        case 0x80:  // PROTO
          if (auto version = little_endian(1); version > 5) {
            fail(fmt::format("pickle protocol {} is not supported", version));
          }
          break;
        case '.':  // STOP
          if (stack_.size() != 1 || !marks_.empty()) fail(malformed("(STOP) leaves a messy stack"));
          if (at_ != bytes_.size()) fail("malformed pickle: data follows its STOP opcode");
          return stack_.back();
        case '(':  // MARK
          marks_.push_back(stack_.size());
          break;
        case 'N':  // NONE
          push(make(value{}));
          break;
        case 0x88:  // NEWTRUE
        case 0x89:  // NEWFALSE
          push(make(value{kind::boolean, op == 0x88 ? 1 : 0, 0, {}, {}}));
          break;
        case 'K':  // BININT1
          push(make_integer(static_cast<std::int64_t>(little_endian(1))));
          break;
        case 'M':  // BININT2
          push(make_integer(static_cast<std::int64_t>(little_endian(2))));
          break;
        case 'J':  // BININT
          push(make_integer(static_cast<std::int32_t>(little_endian(4))));
          break;
        case 0x8a:  // LONG1
          push(make_integer(long1()));
          break;
        case 'G': {  // BINFLOAT, big-endian
          auto part = take(8);
          std::uint64_t bits = 0;
          for (auto b : part) bits = (bits << 8) | std::to_integer<std::uint64_t>(b);
          push(make(value{kind::floating, 0, std::bit_cast<double>(bits), {}, {}}));
          break;
        }
        case 'X':  // BINUNICODE
          push(make(value{kind::string, 0, 0, text(little_endian(4)), {}}));
          break;
        case 0x8c:  // SHORT_BINUNICODE
          push(make(value{kind::string, 0, 0, text(little_endian(1)), {}}));
          break;
        case '}':  // EMPTY_DICT
          push(make(value{kind::dict, 0, 0, {}, {}}));
          break;
        case ']':  // EMPTY_LIST
          push(make(value{kind::list, 0, 0, {}, {}}));
          break;
        case ')':  // EMPTY_TUPLE
          push(make(value{kind::tuple, 0, 0, {}, {}}));
          break;
        case 't':  // TUPLE
          push(make(value{kind::tuple, 0, 0, {}, pop_to_mark()}));
          break;
        case 'l':  // LIST
          push(make(value{kind::list, 0, 0, {}, pop_to_mark()}));
          break;
        case 'd': {  // DICT
          auto items = pop_to_mark();
          if (items.size() % 2 != 0) fail(malformed("(DICT) has a key without a value"));
          push(make(value{kind::dict, 0, 0, {}, std::move(items)}));
          break;
        }
        case 0x85:  // TUPLE1
        case 0x86:  // TUPLE2
        case 0x87:  // TUPLE3
          small_tuple(static_cast<std::size_t>(op - 0x84));
          break;
        case 'a': {  // APPEND
          value_id item = pop();
          expect(top(), kind::list, "the target of APPEND").items.push_back(item);
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_to_mark();
          auto& list = expect(top(), kind::list, "the target of APPENDS");
          list.items.insert(list.items.end(), items.begin(), items.end());
          break;
        }
        case 's': {  // SETITEM
          value_id item = pop();
          value_id key = pop();
          auto& dict = expect(top(), kind::dict, "the target of SETITEM");
          dict.items.insert(dict.items.end(), {key, item});
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_to_mark();
          if (items.size() % 2 != 0) fail(malformed("(SETITEMS) has a key without a value"));
          auto& dict = expect(top(), kind::dict, "the target of SETITEMS");
          dict.items.insert(dict.items.end(), items.begin(), items.end());
          break;
        }
        case 'q':  // BINPUT
          memo_[static_cast<std::uint32_t>(little_endian(1))] = top();
          break;
        case 'r':  // LONG_BINPUT
          memo_[static_cast<std::uint32_t>(little_endian(4))] = top();
          break;
        case 0x94:  // MEMOIZE
          memo_[static_cast<std::uint32_t>(memo_.size())] = top();
          break;
        case 'h':  // BINGET
          push(memo_get(little_endian(1)));
          break;
        case 'j':  // LONG_BINGET
          push(memo_get(little_endian(4)));
          break;
        case 'c': {  // GLOBAL
          std::string module = line();
          std::string name = line();
          push(global(module + "." + name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          value_id name = pop();
          value_id module = pop();
          push(global(expect(module, kind::string, "a STACK_GLOBAL's module").text + "." +
                      expect(name, kind::string, "a STACK_GLOBAL's name").text));
          break;
        }
        case 'Q':  // BINPERSID
          push(persistent_storage(pop()));
          break;
        case 'R': {  // REDUCE
          value_id arguments = pop();
          value_id callable = pop();
          push(reduce(callable, arguments));
          break;
        }
        default:
          fail(
              fmt::format("pickle opcode {} at byte {} is not allowed (featpool reads only "
                          "what torch.save writes for tensors and containers of tensors)",
                          opcode_text(op), opcode_at_));
      }
    }
  }

  static std::string opcode_text(unsigned char op) {
    if (op >= 0x21 && op < 0x7f) return fmt::format("'{}' (0x{:02x})", static_cast<char>(op), op);
    return fmt::format("0x{:02x}", op);
  }

  // LONG1: a little-endian two's complement integer of up to 255 bytes;
  // tensor sizes and offsets fit 64 bits, so longer ones are refused.
  std::int64_t long1() {
    auto count = static_cast<std::size_t>(little_endian(1));
    if (count > 8) {
      take(count);
      fail(fmt::format("an integer of {} bytes in the pickle is too large", count));
    }
    if (count == 0) return 0;
    std::uint64_t bits = little_endian(count);
    if (count < 8 && ((bits >> (count * 8 - 1)) & 1) != 0) bits |= ~std::uint64_t{0} << (count * 8);
    return static_cast<std::int64_t>(bits);
  }

  void small_tuple(std::size_t count) {
    if (stack_.size() - stack_floor() < count) fail(malformed("pops an empty stack"));
    std::vector<value_id> items(stack_.end() - static_cast<std::ptrdiff_t>(count), stack_.end());
    stack_.resize(stack_.size() - count);
    push(make(value{kind::tuple, 0, 0, {}, std::move(items)}));
  }

  value_id memo_get(std::uint64_t key) {
    auto it = memo_.find(static_cast<std::uint32_t>(key));
    if (it == memo_.end()) fail(malformed(fmt::format("reads memo entry {}, never stored", key)));
    return it->second;
  }

  value_id global(std::string name) {
    for (char c : name) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        fail("a pickle global's name contains a control character");
      }
    }
    if (!allowed_global(name)) {
      fail(
          fmt::format("pickle global {} is not allowed (featpool reads only tensors and "
                      "containers of tensors)",
                      name));
    }
    return make(value{kind::global, 0, 0, std::move(name), {}});
  }

  // ('storage', torch.FloatStorage, key, location, numel)
  value_id persistent_storage(value_id id) {
    const auto& pid = expect(id, kind::tuple, "a persistent id");
    if (pid.items.size() != 5 || at(pid.items[0]).type != kind::string ||
        at(pid.items[0]).text != "storage") {
      fail("malformed pickle: a persistent id is not ('storage', type, key, location, size)");
    }
    torch_storage storage;
    storage.type_name = expect(pid.items[1], kind::global, "a storage's type").text;
    const storage_class* found = nullptr;
    for (const auto& c : kStorageClasses) {
      if (c.name == storage.type_name) found = &c;
    }
    if (!found) fail(fmt::format("{} is not a storage type", storage.type_name));
    storage.type = found->type;
    storage.key = expect(pid.items[2], kind::string, "a storage's key").text;
    if (storage.key.empty() || storage.key.find_first_of("/\\") != std::string::npos ||
        std::any_of(storage.key.begin(), storage.key.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
      fail(fmt::format("storage key {:?} is not a record name", storage.key));
    }
    expect(pid.items[3], kind::string, "a storage's location");
    storage.numel = expect_count(pid.items[4], "a storage's size");

    // A storage shared by several tensors is named once per tensor.
    auto [it, inserted] = storage_index_.emplace(storage.key, result_.storages.size());
    if (inserted) {
      result_.storages.push_back(std::move(storage));
    } else {
      const auto& first = result_.storages[it->second];
      if (first.type != storage.type || first.numel != storage.numel) {
        fail(fmt::format("storage '{}' is described twice: as {} of {} elements and as {} of {}",
                         storage.key, first.type_name, first.numel, storage.type_name,
                         storage.numel));
      }
    }
    return make(value{kind::storage, static_cast<std::int64_t>(it->second), 0, {}, {}});
  }

  value_id reduce(value_id callable_id, value_id arguments_id) {
    const std::string name = expect(callable_id, kind::global, "a called object").text;
    const auto arguments = expect(arguments_id, kind::tuple, "a call's arguments").items;
    if (name == kOrderedDict) {
      if (!arguments.empty()) fail("collections.OrderedDict is called with arguments");
      return make(value{kind::dict, 0, 0, {}, {}});
    }
    if (name == kRebuildTensor) return rebuild_tensor(arguments);
    if (name == kRebuildParameter) {
      // (data, requires_grad, backward_hooks): a Parameter is its tensor.
      if (arguments.size() != 3) {
        fail(fmt::format("{} takes 3 arguments, the pickle gives {}", name, arguments.size()));
      }
      expect(arguments[0], kind::tensor, "a parameter's data");
      return arguments[0];
    }
    fail(fmt::format("pickle global {} is not callable here (only {}, {} and {} are)", name,
                     kRebuildTensor, kRebuildParameter, kOrderedDict));
  }

  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  value_id rebuild_tensor(const std::vector<value_id>& arguments) {
    if (arguments.size() != 6 && arguments.size() != 7) {
      fail(fmt::format("{} takes 6 or 7 arguments, the pickle gives {}", kRebuildTensor,
                       arguments.size()));
    }
    torch_tensor tensor;
    tensor.storage =
        static_cast<std::size_t>(expect(arguments[0], kind::storage, "a tensor's storage").integer);
    tensor.offset = expect_count(arguments[1], "a tensor's storage offset");
    const auto size = expect(arguments[2], kind::tuple, "a tensor's size").items;
    const auto stride = expect(arguments[3], kind::tuple, "a tensor's stride").items;
    if (size.size() > kMaxRank) {
      fail(fmt::format("a tensor has {} dimensions, more than {}", size.size(), kMaxRank));
    }
    if (stride.size() != size.size()) {
      fail(fmt::format("a tensor has {} sizes and {} strides", size.size(), stride.size()));
    }
    for (auto id : size) tensor.shape.push_back(expect_count(id, "a tensor's size"));
    for (auto id : stride) tensor.strides.push_back(expect_count(id, "a tensor's stride"));
    expect(arguments[4], kind::boolean, "a tensor's requires_grad");
    expect(arguments[5], kind::dict, "a tensor's backward hooks");
    tensors_.push_back(std::move(tensor));
    return make(value{kind::tensor, static_cast<std::int64_t>(tensors_.size() - 1), 0, {}, {}});
  }

  // --- naming --------------------------------------------------------------

  void name_tensors(value_id id, const std::string& path, std::size_t depth) {
    if (depth > kMaxDepth) {
      fail(
          fmt::format("containers nested more than {} deep (or containing themselves)", kMaxDepth));
    }
    if (++visits_ > kMaxVisits) {
      fail(fmt::format("the pickle's containers refer to each other more than {} times",
                       kMaxVisits));
    }
    const value& v = at(id);
    auto child = [&](const std::string& key) { return path.empty() ? key : path + "." + key; };
    switch (v.type) {
      case kind::tensor: {
        auto tensor = tensors_[static_cast<std::size_t>(v.integer)];
        tensor.name = path;
        if (!names_.insert(path).second) fail(fmt::format("two tensors are named '{}'", path));
        result_.tensors.push_back(std::move(tensor));
        break;
      }
      case kind::list:
      case kind::tuple:
        for (std::size_t i = 0; i < v.items.size(); ++i) {
          name_tensors(v.items[i], child(std::to_string(i)), depth + 1);
        }
        break;
      case kind::dict:
        for (std::size_t i = 0; i + 1 < v.items.size(); i += 2) {
          name_tensors(v.items[i + 1], child(key_text(v.items[i])), depth + 1);
        }
        break;
      default:
        break;  // not a tensor: numbers, strings, None, storages on their own
    }
  }

  // A dict key as a name: strings as they are, integers in decimal.
  std::string key_text(value_id id) const {
    const value& key = at(id);
    if (key.type == kind::integer) return std::to_string(key.integer);
    if (key.type != kind::string) {
      fail(fmt::format("a dict key is {}; tensors are named by string and int keys only",
                       kind_name(key.type)));
    }
    for (char c : key.text) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        fail(fmt::format("dict key {:?} contains a control character", key.text));
      }
    }
    return key.text;
  }

  std::span<const std::byte> bytes_;
  const std::string& file_;
  std::size_t at_ = 0;
  std::size_t opcode_at_ = 0;
  std::vector<value> values_;
  std::vector<value_id> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint32_t, value_id> memo_;
  std::unordered_map<std::string, std::size_t> storage_index_;
  std::vector<torch_tensor> tensors_;  // as rebuilt, before naming
  std::unordered_set<std::string> names_;
  std::size_t visits_ = 0;
  torch_pickle result_;
};

}  // namespace

torch_pickle read_torch_pickle(std::span<const std::byte> pickle, const std::string& file) {
  return unpickler(pickle, file).run();
}

}  // namespace featpool::detail
