#include "featpool/cpus.hpp"

#include <sched.h>

#include <filesystem>
#include <string>

#include "test_files.hpp"
#include <doctest/doctest.h>

namespace featpool {
namespace {

namespace fs = std::filesystem;

// A fake cgroup hierarchy in a temporary folder: `put("a/b/cpu.max", ...)`
// writes a control file, making its folders.
struct cgroup_tree {
  testing::temp_dir dir;
  void put(const std::string& relative, const std::string& text) const {
    fs::create_directories((dir.path() / relative).parent_path());
    testing::write_file(dir.file(relative), text);
  }
  std::optional<double> quota(const std::string& self_cgroup) const {
    return cgroup_cpu_quota(dir.path().string(), self_cgroup);
  }
};

// The tree must give a quota for `self_cgroup`, and this one.
void check_quota(const cgroup_tree& tree, const std::string& self_cgroup, double expected) {
  auto quota = tree.quota(self_cgroup);
  REQUIRE(quota.has_value());
  CHECK(*quota == doctest::Approx(expected));
}

TEST_CASE("cpus: cgroup v2 cpu.max gives quota over period") {
  cgroup_tree tree;
  tree.put("a/b/cpu.max", "200000 100000\n");
  check_quota(tree, "0::/a/b\n", 2.0);
  // The same without a final line break.
  check_quota(tree, "0::/a/b", 2.0);
}

TEST_CASE("cpus: cgroup v2 fractional quota") {
  cgroup_tree tree;
  tree.put("job/cpu.max", "25000 100000\n");
  check_quota(tree, "0::/job\n", 0.25);
}

TEST_CASE("cpus: cgroup v2 max is no limit") {
  cgroup_tree tree;
  tree.put("a/b/cpu.max", "max 100000\n");
  CHECK_FALSE(tree.quota("0::/a/b\n").has_value());
}

TEST_CASE("cpus: cgroup v2 takes the tightest of a cgroup and its ancestors") {
  cgroup_tree tree;
  tree.put("a/cpu.max", "150000 100000\n");
  tree.put("a/b/cpu.max", "200000 100000\n");
  check_quota(tree, "0::/a/b\n", 1.5);

  // A limit on an ancestor alone still applies to the child.
  cgroup_tree parent_only;
  parent_only.put("a/cpu.max", "300000 100000\n");
  parent_only.put("a/b/cpu.max", "max 100000\n");
  check_quota(parent_only, "0::/a/b\n", 3.0);

  // A tighter child wins over a looser ancestor.
  cgroup_tree child_tighter;
  child_tighter.put("a/cpu.max", "400000 100000\n");
  child_tighter.put("a/b/cpu.max", "100000 100000\n");
  check_quota(child_tighter, "0::/a/b\n", 1.0);
}

TEST_CASE("cpus: cgroup v2 at the namespace root reads the mount's own cpu.max") {
  cgroup_tree tree;
  tree.put("cpu.max", "400000 100000\n");
  check_quota(tree, "0::/\n", 4.0);
}

TEST_CASE("cpus: cgroup v1 cpu,cpuacct quota over period") {
  cgroup_tree tree;
  tree.put("cpu,cpuacct/job/cpu.cfs_quota_us", "50000\n");
  tree.put("cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
  check_quota(tree, "4:cpu,cpuacct:/job\n", 0.5);
}

TEST_CASE("cpus: cgroup v1 mounted at cpu") {
  cgroup_tree tree;
  tree.put("cpu/job/cpu.cfs_quota_us", "300000\n");
  tree.put("cpu/job/cpu.cfs_period_us", "100000\n");
  check_quota(tree, "4:cpu,cpuacct:/job\n", 3.0);
  // A hierarchy with the cpu controller alone.
  check_quota(tree, "3:cpu:/job\n", 3.0);
}

TEST_CASE("cpus: cgroup v1 quota of -1 is no limit") {
  cgroup_tree tree;
  tree.put("cpu,cpuacct/job/cpu.cfs_quota_us", "-1\n");
  tree.put("cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
  CHECK_FALSE(tree.quota("4:cpu,cpuacct:/job\n").has_value());
}

TEST_CASE("cpus: cgroup v1 lines of other controllers are ignored") {
  cgroup_tree tree;
  tree.put("cpuacct/job/cpu.cfs_quota_us", "50000\n");
  tree.put("cpuacct/job/cpu.cfs_period_us", "100000\n");
  tree.put("memory/job/cpu.cfs_quota_us", "50000\n");
  tree.put("memory/job/cpu.cfs_period_us", "100000\n");
  CHECK_FALSE(tree.quota("5:cpuacct:/job\n6:memory:/job\n1:name=systemd:/job\n").has_value());
}

TEST_CASE("cpus: cgroup v1 with the controllers listed the other way round") {
  cgroup_tree tree;
  tree.put("cpu,cpuacct/job/cpu.cfs_quota_us", "150000\n");
  tree.put("cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
  check_quota(tree, "4:cpuacct,cpu:/job\n", 1.5);
}

TEST_CASE("cpus: the tightest limit over several lines of /proc/self/cgroup") {
  cgroup_tree tree;
  tree.put("cpu,cpuacct/job/cpu.cfs_quota_us", "250000\n");
  tree.put("cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
  tree.put("job/cpu.max", "120000 100000\n");
  check_quota(tree, "12:memory:/job\n4:cpu,cpuacct:/job\n0::/job\n", 1.2);
}

TEST_CASE("cpus: missing control files are no limit") {
  cgroup_tree tree;
  CHECK_FALSE(tree.quota("0::/a/b\n").has_value());
  CHECK_FALSE(tree.quota("4:cpu,cpuacct:/job\n").has_value());
  // v1 with only one of the two files.
  tree.put("cpu,cpuacct/job/cpu.cfs_quota_us", "50000\n");
  CHECK_FALSE(tree.quota("4:cpu,cpuacct:/job\n").has_value());
  // A root that does not exist at all.
  CHECK_FALSE(cgroup_cpu_quota((tree.dir.path() / "nowhere").string(), "0::/a/b\n").has_value());
}

TEST_CASE("cpus: garbage is no limit") {
  cgroup_tree tree;
  tree.put("v2/cpu.max", "not a number\n");
  tree.put("half/cpu.max", "200000\n");
  tree.put("zero/cpu.max", "200000 0\n");
  tree.put("empty/cpu.max", "");
  tree.put("cpu/v1/cpu.cfs_quota_us", "lots\n");
  tree.put("cpu/v1/cpu.cfs_period_us", "100000\n");
  tree.put("cpu/zero/cpu.cfs_quota_us", "50000\n");
  tree.put("cpu/zero/cpu.cfs_period_us", "0\n");
  for (const char* self :
       {"0::/v2\n", "0::/half\n", "0::/zero\n", "0::/empty\n", "3:cpu:/v1\n", "3:cpu:/zero\n"}) {
    CAPTURE(self);
    CHECK_FALSE(tree.quota(self).has_value());
  }
  // Text that is not /proc/self/cgroup at all.
  tree.put("cpu.max", "200000 100000\n");
  for (const char* self : {"", "\n", "garbage", "no colons here\n"}) {
    CAPTURE(self);
    CHECK_FALSE(tree.quota(self).has_value());
  }
}

TEST_CASE("cpus: available CPUs are between 1 and the affinity count") {
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
  int affinity = CPU_COUNT(&set);
  int cpus = available_cpus();
  CHECK(cpus >= 1);
  CHECK(cpus <= affinity);
}

}  // namespace
}  // namespace featpool
