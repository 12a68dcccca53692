#include "featpool/discover.hpp"

#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fmt/format.h>

#include "featpool/byte_stream.hpp"
#include "featpool/error.hpp"
#include "featpool/hdf5.hpp"
#include "featpool/interrupt.hpp"
#include "featpool/npy.hpp"
#include "featpool/npz.hpp"
#include "featpool/safetensors.hpp"
#include "featpool/torch_pt.hpp"

namespace featpool {
namespace fs = std::filesystem;
namespace {

// A FIFO whose writer never shows up must not hang a batch job forever.
constexpr std::chrono::seconds kFifoWait{10};

// How often that wait looks for Ctrl-C, which must end it at once.
constexpr int kInterruptPollMilliseconds = 100;

constexpr std::array<std::string_view, 7> kTensorExtensions{".npy",         ".npz", ".h5", ".hdf5",
                                                            ".safetensors", ".pt",  ".pth"};

bool has_torch_extension(const std::string& path) {
  auto extension = fs::path(path).extension().string();
  return extension == ".pt" || extension == ".pth";
}

bool has_tensor_extension(const fs::path& path) {
  auto extension = path.extension().string();
  return std::find(kTensorExtensions.begin(), kTensorExtensions.end(), extension) !=
         kTensorExtensions.end();
}

bool is_hidden(const fs::path& path) {
  auto name = path.filename().string();
  return !name.empty() && name.front() == '.';
}

std::vector<input_file> walk_directory(const std::string& argument) {
  std::vector<input_file> found;
  std::error_code ec;
  fs::recursive_directory_iterator it(argument, fs::directory_options::none, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const auto& entry = *it;
    if (is_hidden(entry.path())) {
      if (entry.is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!has_tensor_extension(entry.path()) || !entry.is_regular_file(ec)) continue;
    input_file file;
    file.path = entry.path().string();
    file.display = file.path;
    file.root = argument;
    found.push_back(std::move(file));
  }
  if (ec) throw error(argument, "cannot list the directory: " + ec.message());
  std::sort(found.begin(), found.end(),
            [](const input_file& a, const input_file& b) { return a.path < b.path; });
  return found;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Opens a FIFO without blocking on a writer that never comes: open
// non-blocking, wait a bounded time for data, then read normally.
int open_fifo(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw error(path, std::strerror(errno));
  auto deadline = std::chrono::steady_clock::now() + kFifoWait;
  pollfd waiting{fd, POLLIN, 0};
  int ready = 0;
  while (ready <= 0 && std::chrono::steady_clock::now() < deadline) {
    ready = ::poll(&waiting, 1, kInterruptPollMilliseconds);
    if (pending_interrupt()) {
      ::close(fd);
      check_interrupt();
    }
  }
  if (ready <= 0) {
    ::close(fd);
    throw error(path,
                fmt::format("no data arrived on the FIFO within {} seconds", kFifoWait.count()));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

std::unique_ptr<tensor_source> open_stream(const input_file& input) {
  if (input.path == "-") {
    if (::isatty(STDIN_FILENO)) {
      throw error("-", "standard input is a terminal: pipe an NPY stream into it");
    }
    return open_npy_stream(std::make_unique<fd_stream>(STDIN_FILENO, "-", false), "-", "stdin");
  }
  int fd = open_fifo(input.path);
  return open_npy_stream(std::make_unique<fd_stream>(fd, input.display, true), input.display,
                         fs::path(input.path).stem().string());
}

enum class sniffed { npy, zip, torch_zip, legacy_torch, hdf5, unknown };

// Where a tar archive says "ustar" (POSIX.1-1988): torch.save's oldest
// format (torch < 0.4) is a tar archive.
constexpr std::size_t kTarMagicOffset = 257;

// Bytes read to tell formats apart: enough for a zip's first local header
// and the name of its first record (torch.save writes data.pkl first), and
// for a tar header's magic.
constexpr std::size_t kSniffBytes = 512;

// Whether a zip's first record is "<folder>/data.pkl", as in every file
// torch.save writes: such a zip is read as PyTorch's whatever its name
// (Hugging Face's pytorch_model.bin is one).
bool first_record_is_data_pkl(std::span<const std::byte> head) {
  constexpr std::size_t kNameLengthAt = 26, kNameAt = 30;  // in a local file header
  if (head.size() < kNameAt) return false;
  auto length = std::to_integer<std::size_t>(head[kNameLengthAt]) |
                std::to_integer<std::size_t>(head[kNameLengthAt + 1]) << 8;
  if (head.size() < kNameAt + length) return false;
  std::string_view name(reinterpret_cast<const char*>(head.data() + kNameAt), length);
  auto slash = name.find('/');
  return slash != std::string_view::npos && name.substr(slash) == "/data.pkl";
}

// What a file's first bytes say it is, and the file itself, still at offset
// 0, so the NPY reader goes on without opening it again.
struct sniffed_file {
  sniffed kind = sniffed::unknown;
  std::unique_ptr<fd_stream> opened;
};

sniffed_file sniff(const std::string& path, const std::string& display) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw error(display, std::strerror(errno));
  sniffed_file result{sniffed::unknown, std::make_unique<fd_stream>(fd, display, true)};
  // Reading past 8 bytes is only needed for zips and PyTorch's files; a
  // device such as /dev/zero is not read further than that.
  bool torch_extension = has_torch_extension(path);
  std::array<std::byte, kSniffBytes> magic{};
  std::size_t want = torch_extension ? magic.size() : 8;
  ssize_t got;
  do {
    got = ::pread(fd, magic.data(), want, 0);
  } while (got < 0 && errno == EINTR);
  if (got >= 4 && std::memcmp(magic.data(), "PK\x03\x04", 4) == 0 && !torch_extension) {
    ssize_t more;
    do {
      more = ::pread(fd, magic.data() + got, magic.size() - static_cast<std::size_t>(got), got);
    } while (more < 0 && errno == EINTR);
    if (more > 0) got += more;
  }
  if (got < 0) throw error(display, std::strerror(errno));
  if (got == 0) throw error(display, "empty file");
  auto starts_with = [&](std::string_view prefix) {
    return static_cast<std::size_t>(got) >= prefix.size() &&
           std::memcmp(magic.data(), prefix.data(), prefix.size()) == 0;
  };
  if (starts_with("\x93NUMPY")) {
    result.kind = sniffed::npy;
  } else if (starts_with("PK\x03\x04") || starts_with("PK\x05\x06")) {
    auto head = std::span(magic).first(static_cast<std::size_t>(got));
    result.kind =
        torch_extension || first_record_is_data_pkl(head) ? sniffed::torch_zip : sniffed::zip;
  } else if (starts_like_legacy_torch(std::span(magic).first(static_cast<std::size_t>(got))) ||
             (torch_extension &&
              (starts_with("\x80") ||
               (static_cast<std::size_t>(got) >= kTarMagicOffset + 5 &&
                std::memcmp(magic.data() + kTarMagicOffset, "ustar", 5) == 0)))) {
    result.kind = sniffed::legacy_torch;
  } else if (starts_with("\x89HDF\r\n\x1a\n")) {
    result.kind = sniffed::hdf5;
  }
  return result;
}

// Levenshtein distance, for did-you-mean hints on misspelt tensor names.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string missing_tensor_message(const std::string& wanted,
                                   const std::vector<tensor_info>& tensors) {
  std::string message = fmt::format("no tensor named '{}'", wanted);
  const tensor_info* closest = nullptr;
  std::size_t best = std::string::npos;
  for (const auto& info : tensors) {
    std::size_t distance =
        edit_distance(without_leading_slash(wanted), without_leading_slash(info.name));
    if (distance < best) {
      best = distance;
      closest = &info;
    }
  }
  if (closest && best <= std::max<std::size_t>(2, wanted.size() / 3)) {
    message += fmt::format(" (did you mean '{}'?)", closest->name);
  }
  return message;
}

}  // namespace

std::vector<input_file> expand_input(const std::string& argument) {
  input_file input;
  input.path = argument;
  input.display = argument;
  if (argument == "-") {
    input.stream = true;
    return {input};
  }
  struct stat st {};
  if (::stat(argument.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return walk_directory(argument);
    input.stream = S_ISFIFO(st.st_mode);
    return {input};
  }
  // Kept for the message: a folder that may not be searched, a symlink
  // loop or an overlong name is no missing file.
  int stat_failure = errno;
  // FILE:NAME, split on the last ':' only when what precedes it is a file.
  auto colon = argument.rfind(':');
  if (colon != std::string::npos && colon > 0) {
    std::string file = argument.substr(0, colon);
    if (exists(file)) {
      input.path = file;
      input.display = file;
      input.selector = argument.substr(colon + 1);
      if (input.selector->empty()) throw error(file, "empty tensor name after ':'");
      return {input};
    }
  }
  if (stat_failure != ENOENT && stat_failure != ENOTDIR) {
    throw error(argument, std::strerror(stat_failure));
  }
  throw error(argument, "no such file or directory");
}

std::unique_ptr<tensor_source> open_input(const input_file& input) {
  if (input.stream) return open_stream(input);
  auto file = sniff(input.path, input.display);
  // safetensors has no magic: its first bytes are a length.
  auto extension = fs::path(input.path).extension().string();
  if (extension == ".safetensors") return open_safetensors_file(input.path);
  switch (file.kind) {
    case sniffed::npy:
      return open_npy_file(std::move(file.opened), input.path);
    case sniffed::zip:
      return open_npz_file(input.path);
    case sniffed::torch_zip:
      return open_torch_file(input.path);
    case sniffed::legacy_torch:
      throw error(input.display, kLegacyTorchReason);
    case sniffed::hdf5:
      return open_hdf5_file(input.path);
    case sniffed::unknown:
      break;
  }
  // HDF5 allows a user block before the superblock; let the library decide
  // for files that claim to be HDF5.
  if (extension == ".h5" || extension == ".hdf5") return open_hdf5_file(input.path);
  if (extension == ".npz") throw error(input.display, "not an NPZ file (no zip signature)");
  if (extension == ".npy") throw error(input.display, "not an NPY file (bad magic)");
  if (has_torch_extension(input.path)) {
    throw error(input.display, "not a PyTorch file (no zip signature)");
  }
  throw error(input.display, "not an NPY, NPZ, HDF5, safetensors or PyTorch file");
}

std::string without_leading_slash(const std::string& name) {
  return name.starts_with('/') ? name.substr(1) : name;
}

bool is_glob(const std::string& pattern) {
  return pattern.find_first_of("*?[") != std::string::npos;
}

bool name_matches(const std::string& pattern, const std::string& name) {
  std::string bare_name = without_leading_slash(name);
  std::string bare_pattern = without_leading_slash(pattern);
  if (bare_pattern.find('/') == std::string::npos) {
    auto slash = bare_name.rfind('/');
    if (slash != std::string::npos) bare_name = bare_name.substr(slash + 1);
  }
  return ::fnmatch(bare_pattern.c_str(), bare_name.c_str(), FNM_PATHNAME) == 0;
}

std::vector<std::size_t> select_tensors(const std::vector<tensor_info>& tensors,
                                        const input_file& input,
                                        const std::vector<std::string>& name_globs) {
  std::vector<std::size_t> selected;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& name = tensors[i].name;
    bool wanted = true;
    if (input.selector) {
      // FILE:NAME names the whole path (leading '/' optional), unlike --name.
      // A name without wildcards is compared as it is: fnmatch would take a
      // backslash in it for an escape.
      std::string pattern = without_leading_slash(*input.selector);
      std::string bare_name = without_leading_slash(name);
      wanted = is_glob(pattern) ? ::fnmatch(pattern.c_str(), bare_name.c_str(), FNM_PATHNAME) == 0
                                : pattern == bare_name;
    }
    if (wanted && !name_globs.empty()) {
      wanted = std::any_of(name_globs.begin(), name_globs.end(),
                           [&](const std::string& glob) { return name_matches(glob, name); });
    }
    if (wanted) selected.push_back(i);
  }
  if (input.selector && selected.empty()) {
    if (is_glob(*input.selector)) {
      throw error(input.display, fmt::format("no tensor matches '{}'", *input.selector));
    }
    throw error(input.display, missing_tensor_message(*input.selector, tensors));
  }
  return selected;
}

}  // namespace featpool
