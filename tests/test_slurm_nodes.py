"""Nodes that fail, on the three-node test cluster (tests/slurm/cluster.py):
a node's crash is the SIGKILL of every process on it, its jobs included, and
SLURM, left at its default JobRequeue=1, finds out as it would on a real
cluster (the node stops answering; its jobs end NODE_FAIL).

What each test shows: the output equals a local run's byte for byte, and once
the run that started the jobs has exited, nothing of it is left to run or
write: no job of its working directory pending or running, and none that
SLURM could requeue later (Requeue=0, profiles/slurm).
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO
from test_slurm import RUN_TIMEOUT, jobs_of, queued_jobs, requeue_of, slurm_command

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

CLUSTER_SCRIPT = [sys.executable, str(REPO / "tests" / "slurm" / "cluster.py")]


def cluster(*args):
    result = subprocess.run(CLUSTER_SCRIPT + list(args), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"cluster.py {' '.join(args)}: {result.stderr}"


def on_node(node, command):
    return CLUSTER_SCRIPT + ["on", node] + command


@pytest.fixture
def start_run(tmp_path):
    """Starts runs of a config on the cluster, each with one job held at its
    claim (before it writes anything) until tmp_path/release exists. After the
    test: the runs stopped, their jobs cancelled, every node back in service."""
    runs = []

    def start(config, slow_job, node=None):
        env = {**os.environ, "SNAKESHUF_SLOW_JOBS": slow_job, "SNAKESHUF_RELEASE": str(tmp_path / "release")}
        command = RUN_TIMEOUT + slurm_command(tmp_path, config)
        with open(tmp_path / "run.log", "w") as log:
            runs.append(subprocess.Popen(on_node(node, command) if node else command, start_new_session=True,
                                         stdout=log, stderr=subprocess.STDOUT, env=env))
        return runs[-1]

    yield start
    for run in runs:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    for job in queued_jobs(tmp_path, seconds=0):
        subprocess.run(["scancel", job], check=False)
    cluster("start")


def comment_of(job):
    """The executor's comment for a job named as SNAKESHUF_SLOW_JOBS names it (shuffle_bucket-0)."""
    rule, _, wildcard = job.partition("-")
    return f"rule_{rule}" + (f"_wildcards_{wildcard}" if wildcard else "")


def node_running(workdir, job, seconds=240):
    """The node where `job` has taken its claim, once it has."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        listed = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%k|%N|%Z"],
                                capture_output=True, text=True, check=True).stdout
        for line in listed.splitlines():
            comment, node, job_dir = line.split("|")
            if (comment, job_dir) == (comment_of(job), str(workdir)) and list(workdir.glob(f"scratch/*/locks/{job}.lock")):
                return node
        time.sleep(0.5)
    raise AssertionError(f"{job} never ran: {(workdir / 'run.log').read_text()[-3000:]}")


def finished(run, workdir, seconds=600):
    run.wait(timeout=seconds)
    return run.returncode, (workdir / "run.log").read_text()


def assert_nothing_left_to_run(workdir):
    assert not queued_jobs(workdir), "jobs of the run are still queued or running after it exited"
    assert {requeue_of(job) for job in jobs_of(workdir)} == {"0"}, "SLURM could requeue a job of the run later"


@pytest.mark.parametrize("job", ["split_chunk-0", "shuffle_bucket-0", "gather"])
def test_the_run_survives_the_failure_of_the_node_running_a_job_of_each_stage(
        tmp_path, slurm_reference, start_run, job):
    config, expected = slurm_reference
    run = start_run(config, job)
    node = node_running(tmp_path, job)
    cluster("fail", node)
    (tmp_path / "release").touch()  # the job's retry goes straight on
    returncode, log = finished(run, tmp_path)
    assert returncode == 0, log[-6000:]
    assert (tmp_path / "out.txt").read_bytes() == expected

    tries = [j for j in jobs_of(tmp_path) if j.comment == comment_of(job)]
    assert [j.state for j in tries] == ["NODE_FAIL", "COMPLETED"], tries
    assert tries[0].nodes == node and tries[1].nodes != node, tries
    assert_nothing_left_to_run(tmp_path)


def test_a_run_whose_host_died_is_resumed_from_another_host_without_unlock(tmp_path, slurm_reference, start_run):
    """The main Snakemake process runs on n1, a login node that runs no jobs,
    where the lock of its output names it; from n2 the same command is refused
    while it lives, then resumes it once n1 has died with the process. The dead
    run's jobs on n2 and n3 go on alone, and end."""
    config, expected = slurm_reference
    subprocess.run(["scontrol", "update", "NodeName=n1", "State=DRAIN", "Reason=login node"], check=True)
    run = start_run(config, "shuffle_bucket-0", node="n1")
    node_running(tmp_path, "shuffle_bucket-0")
    command = RUN_TIMEOUT + slurm_command(tmp_path, config)

    second = subprocess.run(on_node("n2", command), capture_output=True, text=True)
    assert second.returncode != 0, second.stderr[-3000:]
    assert "is being written by another run (snakeshuf PID" in second.stderr and " on n1)" in second.stderr
    assert run.poll() is None, "the live run on n1 was disturbed"

    cluster("fail", "n1")
    assert finished(run, tmp_path, seconds=30)[0] != 0
    (tmp_path / "release").touch()  # the dead run's bucket 0 still runs: it ends
    resumed = subprocess.run(on_node("n2", command), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-6000:]
    assert (tmp_path / "out.txt").read_bytes() == expected
    assert "n1" not in {job.nodes for job in jobs_of(tmp_path)}
    assert_nothing_left_to_run(tmp_path)
