#pragma once
// How many CPUs this process may use: the default for -j.

#include <optional>
#include <string>

namespace featpool {

// The CPUs in this process's affinity mask (as nproc counts them), lowered
// to its cgroup's CPU quota when one is set (a container or a Slurm job
// limited to 2 CPUs on a 64-core node gets 2).
int available_cpus();

// The CPU quota of the cgroup described by `self_cgroup` (the text of
// /proc/self/cgroup), in CPUs, under the hierarchy mounted at
// `cgroup_root`; the tightest limit of the cgroup and its ancestors.
// Empty when no quota is set. Handles cgroup v2 (cpu.max) and v1
// (cpu.cfs_quota_us and cpu.cfs_period_us).
std::optional<double> cgroup_cpu_quota(const std::string& cgroup_root,
                                       const std::string& self_cgroup);

}  // namespace featpool
