"""docs/scaling.md's Slurm recipes, run as written on a real single-node Slurm cluster.

Usage: /usr/bin/python3 slurm_shards_test.py FEATPOOL SCALING_MD

The test starts its own cluster as root: munged (unless one already answers), then slurmctld and
slurmd on free ports with a slurm.conf, state and logs in a temporary folder, and stops every
daemon it started when it ends. It then submits the `slurm-script` recipe with the
`slurm-submit` recipe in a folder holding a small dump tree, and checks the job array's output
against one featpool process: the same files byte for byte, and the shard reports merged by the
`merge-reports` recipe counting every tensor once.

Exits 77 (skipped), with the reason on one line, when not root or when munge, Slurm or jq is not
installed. The last line is `slurm_shards_test: N passed, M failed`; the exit code is 1 on any
failure, and the daemons' log tails are printed then.
"""

import grp
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from collections import Counter
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree when CTest runs this
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scaling_recipes as recipes  # noqa: E402

FEATPOOL = ""
SCALING_MD = ""
STATE = Path()  # the cluster's conf, state and logs; removed at the end
SKIPPED_EXIT_CODE = 77
REQUIRED_TOOLS = ("munged", "munge", "unmunge", "slurmctld", "slurmd", "sbatch", "sinfo",
                  "squeue", "scancel", "jq")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN_DIR = Path("/run/munge")
IDLE_TIMEOUT_S = 60
JOB_TIMEOUT_S = 120
STOP_TIMEOUT_S = 15


def skip_reason():
    if os.geteuid() != 0:
        return "needs root to start munged, slurmctld and slurmd"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    return f"not installed: {' '.join(missing)}" if missing else None


def slurm_env():
    return dict(os.environ, SLURM_CONF=str(STATE / "slurm.conf"))


def stop(proc):
    """Stops a daemon this test started, by its pid: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_daemon(argv, log_name, **popen_args):
    with open(STATE / log_name, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, **popen_args)


def wait_for(condition, what, timeout_s, daemons=()):
    """Polls condition() until true; fails early when one of the daemons has exited."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        exited = [d.args[0] for d in daemons if d.poll() is not None]
        if exited:
            raise AssertionError(f"{' and '.join(exited)} exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.5)


# munge: Slurm authenticates every message with it.

def munge_answers():
    credential = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
    if credential.returncode != 0:
        return False
    return subprocess.run(["unmunge"], input=credential.stdout, capture_output=True,
                          timeout=10).returncode == 0


def prepare_munge():
    """Creates the key if missing and the socket folder, both owned by munge as munged demands."""
    if not MUNGE_KEY.exists():
        MUNGE_KEY.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.chown(MUNGE_KEY.parent, "munge", "munge")
        # Created with its final mode: never readable by others, not even for a moment.
        with os.fdopen(os.open(MUNGE_KEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400),
                       "wb") as key:
            key.write(os.urandom(1024))
        shutil.chown(MUNGE_KEY, "munge", "munge")
    MUNGE_RUN_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    shutil.chown(MUNGE_RUN_DIR, "munge", "munge")


def start_munged():
    """Starts munged as the munge user, in the foreground so its pid is the Popen's."""
    prepare_munge()
    # --force: no munged answers, so a socket left in /run/munge is stale.
    return start_daemon([shutil.which("munged"), "--foreground", "--force"], "munged.out",
                        user=pwd.getpwnam("munge").pw_uid, group=grp.getgrnam("munge").gr_gid,
                        extra_groups=[])


# Slurm: one node, on free ports so that no other slurmctld or slurmd on this machine answers.

def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write_slurm_conf():
    """Writes slurm.conf: one node with the CPUs this process may use (as nproc counts them),
    everything in STATE.

    Two lines beyond the minimum keep the job short. CR_Core leaves memory out of allocations,
    so array tasks share the node instead of each taking all of its memory. MinJobAge=6 keeps
    `sbatch --wait` polling every 2 s (it polls every 2 s only while 2 >= MinJobAge / 3; at the
    default of 300 it sleeps 2, 8, then 32 s), while a finished task's record still outlives
    a poll.
    """
    host = socket.gethostname().split(".")[0]
    ctld_port, slurmd_port = free_ports(2)
    (STATE / "slurmd-spool").mkdir()
    (STATE / "slurmctld-state").mkdir()
    (STATE / "slurm.conf").write_text(f"""\
ClusterName=featpooltest
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
NodeName={host} CPUs={len(os.sched_getaffinity(0))} RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
ReturnToService=2
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MinJobAge=6
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SlurmUser=root
SlurmdUser=root
SlurmctldPidFile={STATE}/slurmctld.pid
SlurmdPidFile={STATE}/slurmd.pid
StateSaveLocation={STATE}/slurmctld-state
SlurmdSpoolDir={STATE}/slurmd-spool
SlurmctldLogFile={STATE}/slurmctld.log
SlurmdLogFile={STATE}/slurmd.log
""")


def node_is_idle():
    done = subprocess.run(["sinfo", "-h", "-o", "%t"], env=slurm_env(), capture_output=True,
                          text=True, timeout=10)
    return done.stdout.strip() == "idle"


def no_jobs_left():
    done = subprocess.run(["squeue", "-h"], env=slurm_env(), capture_output=True, text=True,
                          timeout=10)
    return done.returncode != 0 or done.stdout.strip() == ""


def cancel_jobs(slurmctld):
    """Cancels whatever a failed run left queued or running, so no job outlives the cluster."""
    if slurmctld.poll() is not None:
        return  # no controller to ask, and so no job it could have started
    subprocess.run(["scancel", "--user", pwd.getpwuid(os.geteuid()).pw_name], env=slurm_env(),
                   capture_output=True, timeout=10)
    try:
        wait_for(no_jobs_left, "cancelled jobs to end", STOP_TIMEOUT_S)
    except AssertionError as e:
        print(f"slurm_shards_test: {e}")


def log_tails(lines=30):
    tails = []
    for log in sorted(STATE.glob("*.log")) + sorted(STATE.glob("*.out")) + sorted(
            STATE.glob("work/reports/*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        tails.append(f"--- {log.relative_to(STATE)} (last {lines} lines)\n" + "\n".join(text))
    return "\n".join(tails)


class SlurmShards(unittest.TestCase):
    """The job array of the slurm-script recipe, submitted with the slurm-submit recipe."""

    @classmethod
    def setUpClass(cls):
        cls.start_cluster()
        cls.work = STATE / "work"
        cls.work.mkdir()
        recipes.make_dump_tree(cls.work)
        code, _, err = cls.featpool("pool", "dumps/", "-o", "reference/", "--size", "7", "-q",
                                    "--report", "reference.json")
        if code != 0:
            raise AssertionError(f"the one-process reference run failed ({code}): {err}")
        cls.reference = recipes.load_report(cls.work / "reference.json")
        (cls.work / "pool-shards.sbatch").write_text(recipes.recipe(SCALING_MD, "slurm-script"))
        code, out, err = cls.run_recipe("slurm-submit", timeout=JOB_TIMEOUT_S)
        if code != 0:
            raise AssertionError(f"the slurm-submit recipe failed ({code})\nstdout: {out}\n"
                                 f"stderr: {err}")

    @classmethod
    def start_cluster(cls):
        # Class cleanups run in reverse order, even when setUpClass fails halfway.
        if not munge_answers():
            munged = start_munged()
            cls.addClassCleanup(stop, munged)
            wait_for(munge_answers, "munged to answer", 15, [munged])
        write_slurm_conf()
        conf = str(STATE / "slurm.conf")
        slurmctld = start_daemon([shutil.which("slurmctld"), "-D", "-f", conf], "slurmctld.out",
                                 env=slurm_env())
        cls.addClassCleanup(stop, slurmctld)
        slurmd = start_daemon([shutil.which("slurmd"), "-D", "-f", conf], "slurmd.out",
                              env=slurm_env())
        cls.addClassCleanup(stop, slurmd)
        cls.addClassCleanup(cancel_jobs, slurmctld)
        wait_for(node_is_idle, "the node to be idle", IDLE_TIMEOUT_S, [slurmctld, slurmd])

    @classmethod
    def featpool(cls, *args):
        done = subprocess.run([FEATPOOL, *args], cwd=cls.work, capture_output=True, text=True,
                              timeout=JOB_TIMEOUT_S)
        return done.returncode, done.stdout, done.stderr

    @classmethod
    def run_recipe(cls, name, timeout=recipes.SHELL_TIMEOUT_S):
        # The job inherits this environment: SLURM_CONF and featpool on PATH.
        return recipes.run_shell(recipes.recipe(SCALING_MD, name), cls.work, FEATPOOL,
                                 env={"SLURM_CONF": str(STATE / "slurm.conf")}, timeout=timeout)

    def test_pooled_tree_is_byte_identical_to_one_process(self):
        self.assertEqual(
            recipes.tree_differences(self.work / "pooled", self.work / "reference"), [])

    def test_each_array_task_pooled_its_shard(self):
        for k in range(1, 5):
            with self.subTest(task=k):
                report = recipes.load_report(self.work / f"reports/shard-{k}.json")
                self.assertGreaterEqual(report["totals"]["ok"], 1)
                self.assertEqual(report["totals"]["failed"], 0)

    def test_merged_report_counts_every_tensor_once(self):
        code, _, err = self.run_recipe("merge-reports")
        self.assertEqual(code, 0, err)
        merged = recipes.load_report(self.work / "report.json")
        counts = Counter(recipes.tensor_keys(merged))
        self.assertEqual([key for key, n in counts.items() if n > 1], [], "counted twice")
        self.assertEqual(set(counts), set(recipes.tensor_keys(self.reference)))
        self.assertEqual(merged["totals"], self.reference["totals"])


def main():
    global FEATPOOL, SCALING_MD, STATE
    FEATPOOL, SCALING_MD = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    reason = skip_reason()
    if reason:
        print(f"slurm_shards_test: SKIPPED: {reason}")
        sys.exit(SKIPPED_EXIT_CODE)
    start = time.monotonic()
    STATE = Path(tempfile.mkdtemp(prefix="featpool-slurm-"))
    try:
        result = unittest.main(argv=sys.argv[:1], exit=False, verbosity=2).result
        passed, failed, _ = recipes.unittest_counts(result)
        if failed:
            print(log_tails())
    finally:
        shutil.rmtree(STATE, ignore_errors=True)
    print(f"elapsed {time.monotonic() - start:.1f} s")
    print(f"slurm_shards_test: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
