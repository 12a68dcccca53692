// Runs a fuzz target's LLVMFuzzerTestOneInput on saved inputs, without
// libFuzzer: every file named, and every file in a directory named (sorted,
// not recursing). For the regression tests of the normal build, which
// replay past findings and the seeds. A target that crashes or aborts fails
// the run; so does an argument that is missing or holds no inputs, since a
// replay of nothing would prove nothing.
//
// scripts/fuzz reports an allocation of more than 2 GiB as a finding: out of
// all proportion to inputs of a few KiB. The replay makes such an allocation
// fail too (an uncaught std::bad_alloc aborts it), so that a fixed one stays
// fixed: through AddressSanitizer's own limit when built with it (it reserves
// terabytes of address space for itself), else by limiting the address space.

#include <sys/resource.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FEATPOOL_REPLAY_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FEATPOOL_REPLAY_ASAN 1
#endif

#if defined(FEATPOOL_REPLAY_ASAN)
// Read by AddressSanitizer at start-up; ASAN_OPTIONS still override it.
extern "C" const char* __asan_default_options() { return "max_allocation_size_mb=2048"; }
#else
// 2 GiB for allocations, and room for the program, its libraries and its
// threads' stacks.
constexpr rlim_t kAddressSpaceBytes = rlim_t{3} << 30;
#endif

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
#if !defined(FEATPOOL_REPLAY_ASAN)
  rlimit limit{kAddressSpaceBytes, kAddressSpaceBytes};
  if (::setrlimit(RLIMIT_AS, &limit) != 0) {
    std::cerr << "cannot limit the address space\n";
    return 1;
  }
#endif
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " FILE_OR_DIRECTORY...\n";
    return 2;
  }
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    fs::path argument = argv[i];
    if (!fs::is_directory(argument)) {
      if (!fs::is_regular_file(argument)) {
        std::cerr << argument.string() << ": no such file or directory\n";
        return 1;
      }
      inputs.push_back(argument);
      continue;
    }
    std::vector<fs::path> found;
    for (const auto& entry : fs::directory_iterator(argument)) {
      if (entry.is_regular_file()) found.push_back(entry.path());
    }
    if (found.empty()) {
      std::cerr << argument.string() << ": no inputs in it\n";
      return 1;
    }
    std::sort(found.begin(), found.end());
    inputs.insert(inputs.end(), found.begin(), found.end());
  }
  for (const auto& path : inputs) {
    std::cout << path.string() << std::endl;  // flushed: a crash names its input
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes(std::istreambuf_iterator<char>(in), {});
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  }
  std::cout << "replayed " << inputs.size() << " inputs\n";
  return 0;
}
