"""Nodes that fail, on the three-node test cluster (tests/slurm/cluster.py):
a node's crash is the SIGKILL of every process on it, its jobs included, and
SLURM, left at its default JobRequeue=1, finds out as it would on a real
cluster (the node stops answering; its jobs end NODE_FAIL).

What each test shows: the output equals a local run's byte for byte, and once
the run that started the jobs has exited, nothing of it is left to run or
write: no job of its working directory queued or running, and none that SLURM
could requeue later (Requeue=0, profiles/slurm).
"""

import os
import subprocess
import sys
import time

import pytest

from conftest import REPO
from test_slurm import RUN_TIMEOUT, jobs_of, queued_jobs, requeue_of, rule_of, slurm_command

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

CLUSTER = [sys.executable, str(REPO / "tests" / "slurm" / "cluster.py")]


def cluster(*args):
    subprocess.run(CLUSTER + list(args), check=True, capture_output=True, timeout=180)


@pytest.fixture
def cluster_restored(tmp_path):
    """After the test, every node back in service and no job of its run left."""
    yield
    cluster("start")
    for job in queued_jobs(tmp_path):
        subprocess.run(["scancel", job.split()[0]], check=False)


def start_run(workdir, config, slow_job, on_node=None):
    """The run of `config` on the cluster, its job `slow_job` waiting in its
    claim (before it writes anything) until workdir/release exists."""
    env = {"SNAKESHUF_SLOW_JOBS": slow_job, "SNAKESHUF_RELEASE": str(workdir / "release")}
    command = RUN_TIMEOUT + slurm_command(workdir, config)
    if on_node:
        command = CLUSTER + ["on", on_node] + command
    log = open(workdir / "run.log", "w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})


def node_running(workdir, job, seconds=240):
    """The node where `job` (split_chunk-0, shuffle_bucket-0, gather) has taken
    its claim, once it has."""
    rule, _, wildcard = job.partition("-")
    comment = f"rule_{rule}" + (f"_wildcards_{wildcard}" if wildcard else "")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        listed = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%k|%N|%Z"],
                                capture_output=True, text=True, check=True).stdout
        for line in listed.splitlines():
            job_comment, node, job_dir = line.split("|")
            if job_comment == comment and job_dir == str(workdir) and list(workdir.glob(f"scratch/*/locks/{job}.lock")):
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
        tmp_path, slurm_reference, cluster_restored, job):
    config, expected = slurm_reference
    run = start_run(tmp_path, config, job)
    node = node_running(tmp_path, job)
    cluster("fail", node)
    (tmp_path / "release").touch()  # the job's retry goes straight on
    returncode, log = finished(run, tmp_path)
    assert returncode == 0, log[-6000:]
    assert (tmp_path / "out.txt").read_bytes() == expected

    jobs = [j for j in jobs_of(tmp_path) if rule_of(j) == job.split("-")[0]]
    failed = [j for j in jobs if j.state == "NODE_FAIL"]
    assert failed and {j.nodes for j in failed} == {node}, jobs
    retried = [j for j in jobs if j.comment == failed[0].comment and j.state == "COMPLETED"]
    assert len(retried) == 1 and retried[0].nodes != node, jobs
    assert_nothing_left_to_run(tmp_path)


def test_a_run_whose_host_died_is_resumed_from_another_host_without_unlock(tmp_path, slurm_reference, cluster_restored):
    """The main Snakemake process runs on n1 (in n1's namespace), where the
    lock of its output names it; from n2 the same command is refused while it
    lives, then resumes it once n1 has died with the process."""
    config, expected = slurm_reference
    run = start_run(tmp_path, config, "shuffle_bucket-0", on_node="n1")
    node_running(tmp_path, "shuffle_bucket-0")

    second = subprocess.run(CLUSTER + ["on", "n2"] + RUN_TIMEOUT + slurm_command(tmp_path, config),
                            capture_output=True, text=True)
    assert second.returncode != 0 and "another run" in second.stderr, second.stderr[-3000:]
    assert "on n1" in second.stderr, "the refusal does not name the host of the live run"
    assert run.poll() is None, "the live run on n1 was disturbed"

    cluster("fail", "n1")
    returncode, _ = finished(run, tmp_path, seconds=30)
    assert returncode != 0
    (tmp_path / "release").touch()  # the dead run's bucket 0 (on n2 or n3) may still run: it ends
    resumed = subprocess.run(CLUSTER + ["on", "n2"] + RUN_TIMEOUT + slurm_command(tmp_path, config),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-6000:]
    assert (tmp_path / "out.txt").read_bytes() == expected
    assert_nothing_left_to_run(tmp_path)
