"""The workflow on a real three-node SLURM cluster, through profiles/slurm.

The cluster is the one tests/slurm/cluster.py starts (`make test` does it):
jobs go through sbatch and srun to nodes n1, n2 and n3, sacct reads slurmdbd,
and memory is enforced by cgroups, so a job that outgrows its request really
is killed. Nodes that fail: tests/test_slurm_nodes.py.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, SLURM_MEMORY_MB as MEMORY_MB, job_reports, snakemake_command
from slurm_acceptance import rule_of, sacct_jobs
from snakeshuf.planning.memory import CLUSTER_JOB_OVERHEAD_MB
from test_stopping import run_and_signal

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

# Every cluster run is bounded: a Snakemake that lost track of its jobs would
# otherwise wait forever (and it ignores SIGTERM then, hence -k).
# Only around runs no test signals: SIGTERM sent to `timeout` goes on to its
# whole process group, so a scancel the run had just started would die of it.
RUN_TIMEOUT = ["timeout", "-k", "10", "900"]
SLURM_STATUS_CHECK_SECONDS = 180
# sacct keeps earlier sessions' jobs, whose working directories a new
# session's tmp_path may repeat (pytest numbers them from 0 again).
SESSION_START = time.strftime("%Y-%m-%dT%H:%M:%S")


def jobs_of(workdir):
    return sacct_jobs(workdir, since=SESSION_START)


def requeue_of(job):
    """Whether SLURM would requeue the job (scontrol's Requeue=, kept MinJobAge after it ends)."""
    shown = subprocess.run(["scontrol", "show", "job", job.id], capture_output=True, text=True, check=True).stdout
    return shown.split("Requeue=")[1].split()[0]


def slurm_command(workdir, config, *args):
    return snakemake_command(
        workdir, config,
        "--workflow-profile", str(REPO / "profiles" / "slurm"),
        "--slurm-init-seconds-before-status-checks", "2",
        *args,
    )


def run_on_slurm(workdir, config, *args, env_extra=None, check=True):
    env = dict(os.environ, **(env_extra or {}))
    command = RUN_TIMEOUT + slurm_command(workdir, config, *args)
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode != 124, "the SLURM run timed out"
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stderr[-6000:]}")
    return result


def test_slurm_run_matches_the_local_run_and_asks_for_the_planned_memory(tmp_path, slurm_reference):
    config, expected = slurm_reference
    run_on_slurm(tmp_path, config)
    assert (tmp_path / "out.txt").read_bytes() == expected

    jobs = jobs_of(tmp_path)
    assert {job.nodes for job in jobs} == {"n1", "n2", "n3"}, "the run's jobs did not spread over the cluster"
    rules = sorted(rule_of(job) for job in jobs)
    assert rules.count("gather") == 1 and "tally_buckets" not in rules  # a small plan: no tally job
    assert rules.count("split_chunk") == 3 and rules.count("shuffle_bucket") > 1, rules
    assert {(job.state, job.step_state) for job in jobs} == {("COMPLETED", "COMPLETED")}
    assert {job.mem_mb for job in jobs} == {MEMORY_MB + CLUSTER_JOB_OVERHEAD_MB}
    assert {requeue_of(job) for job in jobs} == {"0"}, "SLURM may requeue the profile's jobs behind Snakemake's back"
    # SLURM gets the overhead on top; the job itself keeps to memory_mb.
    budgets = {report["memory_mb"] for report in job_reports(tmp_path) if "memory_mb" in report}
    assert budgets == {MEMORY_MB}


def test_rerun_after_a_failed_bucket_submits_only_that_bucket_and_gather(tmp_path, slurm_reference):
    config, expected = slurm_reference
    failed = run_on_slurm(tmp_path, config, "--retries", "0",
                          env_extra={"SNAKESHUF_FAIL_BUCKETS": "1"}, check=False)
    assert failed.returncode != 0
    assert not (tmp_path / "out.txt").exists()
    first_run = len(jobs_of(tmp_path))

    run_on_slurm(tmp_path, config)
    rerun = [job.comment for job in jobs_of(tmp_path)[first_run:]]
    assert sorted(rerun) == ["rule_gather", "rule_shuffle_bucket_wildcards_1"]
    assert (tmp_path / "out.txt").read_bytes() == expected


def test_a_job_killed_for_memory_is_retried_with_more_and_succeeds(tmp_path, slurm_reference):
    config, expected = slurm_reference
    config = {**config, "memory_mb": 200}
    # Each split/shuffle job holds 300 MB beyond its model: more than attempt 1
    # asks for (200 + overhead), less than attempt 2 (400 + overhead).
    run_on_slurm(tmp_path, config, env_extra={"SNAKESHUF_EXTRA_MEMORY_MB": "300"})
    assert (tmp_path / "out.txt").read_bytes() == expected

    jobs = jobs_of(tmp_path)
    killed = [job for job in jobs if job.step_state == "OUT_OF_MEMORY"]
    retried = [job for job in jobs if rule_of(job) != "gather" and job.step_state == "COMPLETED"]
    assert killed and len(killed) == len(retried), jobs
    assert {job.mem_mb for job in killed} == {200 + CLUSTER_JOB_OVERHEAD_MB}
    assert {job.mem_mb for job in retried} == {400 + CLUSTER_JOB_OVERHEAD_MB}


def test_bucket_jobs_of_a_large_plan_as_a_slurm_array_give_the_same_bytes(tmp_path, slurm_reference):
    """A plan large enough for a tally job (at a memory unit of 41 KiB: 6
    split jobs, 6 bucket jobs; 44 KiB has none): the bucket jobs read its
    table on the cluster."""
    config, expected = slurm_reference
    large_plan = {"SNAKESHUF_MIB_BYTES": str(41 << 10)}
    run_on_slurm(tmp_path, {**config, "chunk_mb": "auto"}, "--slurm-array-jobs", "shuffle_bucket", env_extra=large_plan)
    assert (tmp_path / "out.txt").read_bytes() == expected
    jobs = jobs_of(tmp_path)
    assert {job.state for job in jobs} == {"COMPLETED"}
    summary = json.loads((tmp_path / "out.txt.summary.json").read_text())
    array_tasks = [job for job in jobs if "_" in job.id]
    assert [rule_of(job) for job in jobs].count("tally_buckets") == 1, jobs
    assert len(array_tasks) == summary["buckets"] > 1, jobs
    assert len(jobs) == summary["chunks"] + 1 + summary["buckets"] + 1, jobs


def test_sigterm_cancels_the_runs_slurm_jobs_and_the_same_command_resumes(tmp_path, slurm_reference):
    config, expected = slurm_reference
    moment = ("rule_shuffle_bucket/0/", 1, 1.0)  # a second after the slow bucket 0 was submitted
    seconds, returncode, stderr = run_and_signal(slurm_command(tmp_path, config), signal.SIGTERM, moment)
    assert seconds is not None and returncode != 0, stderr[-3000:]
    assert "Traceback" not in stderr and "stopped by SIGTERM" in stderr, stderr[-3000:]
    # The jobs are cancelled at once; Snakemake itself then waits for its next
    # status check, which the SLURM plugin spaces out to up to 180 s.
    assert seconds < SLURM_STATUS_CHECK_SECONDS, f"exited {seconds:.1f} s after SIGTERM"
    assert not queued_jobs(tmp_path), "SLURM jobs of the run are still queued or running"
    assert "CANCELLED" in final_bucket_states(tmp_path), "bucket 0 (30 s) was not cancelled"
    run_on_slurm(tmp_path, config)
    assert (tmp_path / "out.txt").read_bytes() == expected


def final_bucket_states(workdir, seconds=30):
    """The states of the run's bucket jobs once SLURM's accounting has them all ended."""
    deadline = time.monotonic() + seconds
    while True:
        states = {job.state for job in jobs_of(workdir) if rule_of(job) == "shuffle_bucket"}
        if (states and not states & {"PENDING", "RUNNING"}) or time.monotonic() > deadline:
            return states
        time.sleep(1)


def queued_jobs(workdir, seconds=30):
    """The IDs of the run's jobs (those working in workdir) SLURM still has
    once those that are ending (cancelled, completing) have had `seconds` to go."""
    deadline = time.monotonic() + seconds
    while True:
        listed = subprocess.run(["squeue", "-h", "-o", "%i|%Z"], capture_output=True, text=True, check=True)
        jobs = [job for job, job_dir in (line.split("|") for line in listed.stdout.splitlines())
                if Path(job_dir) == Path(workdir)]
        if not jobs or time.monotonic() > deadline:
            return jobs
        time.sleep(1)
