#include "featpool/cpus.hpp"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace featpool {
namespace fs = std::filesystem;
namespace {

std::optional<std::string> read_small_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// cgroup v2: "max 100000" (no limit) or "200000 100000" (2 CPUs).
std::optional<double> quota_v2(const fs::path& folder) {
  auto text = read_small_file(folder / "cpu.max");
  if (!text) return std::nullopt;
  std::istringstream fields(*text);
  std::string quota;
  double period = 0;
  if (!(fields >> quota >> period) || quota == "max" || period <= 0) return std::nullopt;
  double value = std::strtod(quota.c_str(), nullptr);
  return value > 0 ? std::optional(value / period) : std::nullopt;
}

// cgroup v1: a quota of -1 means no limit.
std::optional<double> quota_v1(const fs::path& folder) {
  auto quota = read_small_file(folder / "cpu.cfs_quota_us");
  auto period = read_small_file(folder / "cpu.cfs_period_us");
  if (!quota || !period) return std::nullopt;
  double q = std::strtod(quota->c_str(), nullptr);
  double p = std::strtod(period->c_str(), nullptr);
  return q > 0 && p > 0 ? std::optional(q / p) : std::nullopt;
}

// The tightest quota along `relative` (the cgroup's path in its hierarchy)
// and every ancestor up to `mount`.
template <class Reader>
std::optional<double> tightest(const fs::path& mount, const fs::path& relative, Reader read) {
  std::optional<double> limit;
  fs::path folder = mount;
  auto consider = [&] {
    if (auto q = read(folder)) limit = limit ? std::min(*limit, *q) : *q;
  };
  consider();
  for (const auto& part : relative.relative_path()) {
    folder /= part;
    consider();
  }
  return limit;
}

}  // namespace

std::optional<double> cgroup_cpu_quota(const std::string& cgroup_root,
                                       const std::string& self_cgroup) {
  std::istringstream lines(self_cgroup);
  std::optional<double> limit;
  auto take = [&](std::optional<double> q) {
    if (q) limit = limit ? std::min(*limit, *q) : *q;
  };
  for (std::string line; std::getline(lines, line);) {
    // "hierarchy-id:controllers:path"; v2 is "0::path".
    auto first = line.find(':');
    auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    fs::path path = line.substr(second + 1);
    fs::path root(cgroup_root);
    if (controllers.empty()) {
      take(tightest(root, path, quota_v2));
      continue;
    }
    std::istringstream names(controllers);
    for (std::string name; std::getline(names, name, ',');) {
      if (name != "cpu") continue;
      // v1 mounts the controller at cpu/ or at cpu,cpuacct/ (cpu/ is often
      // a link to it); inside a container the path may be relative to a
      // namespace root, where the mount root itself holds the limit.
      for (const char* mount : {"cpu", "cpu,cpuacct"}) {
        take(tightest(root / mount, path, quota_v1));
      }
    }
  }
  return limit;
}

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? std::max(1, CPU_COUNT(&set)) : 1;
  auto self = read_small_file("/proc/self/cgroup");
  if (!self) return cpus;
  if (auto quota = cgroup_cpu_quota("/sys/fs/cgroup", *self)) {
    cpus = std::min(cpus, std::max(1, static_cast<int>(std::ceil(*quota))));
  }
  return cpus;
}

}  // namespace featpool
