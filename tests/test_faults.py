"""Failures are non-events: the same command run again finishes the job, redoes
only what was lost, and gives the bytes an undisturbed run gives."""

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, assert_published_as_the_reference, corpus_file, run_workflow, snakemake_command

SEED = 17


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """300 MB: 4 buckets at memory_mb=160 (a 20 MB corpus, tiled)."""
    d = tmp_path_factory.mktemp("faults")
    corpus_file(d / "block.txt", 20 << 20, seed=3)
    block = (d / "block.txt").read_bytes()
    with open(d / "corpus.txt", "wb") as out:
        for _ in range(15):
            out.write(block)
    return str(d / "corpus.txt")


def config_for(corpus, **extra):
    return {"inputs": [corpus], "output": "out.txt", "seed": SEED, "memory_mb": 160, **extra}


@pytest.fixture(scope="module")
def undisturbed_run(tmp_path_factory, corpus):
    """What an undisturbed run publishes, and how many seconds the run took
    (the reference model's check after it not counted)."""
    d = tmp_path_factory.mktemp("reference")
    started = time.monotonic()
    result = subprocess.run(snakemake_command(d, config_for(corpus)), capture_output=True, text=True)
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"snakemake failed ({result.returncode}):\n{result.stderr[-6000:]}"
    assert_published_as_the_reference(d, config_for(corpus))
    return (d / "out.txt").read_bytes(), seconds


@pytest.fixture(scope="module")
def reference(undisturbed_run):
    return undisturbed_run[0]


def job_stats(dry_run_output):
    """Rule -> job count from the 'Job stats' table of a dry run."""
    table = dry_run_output.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


def bucket_logs(workdir):
    return {int(p.stem): p for p in Path(workdir).glob("logs/*/shuffle_bucket/*.log")}


def test_an_input_changed_in_place_while_the_run_reads_it_stops_the_run(tmp_path):
    """Found by a hostile pass: an input rewritten in place with as many bytes
    between the plan and a split job gave an output mixing its old records
    and its new ones, with exit 0 (only the size was checked). The split job
    now fails naming the file, and the same command re-plans and gives the
    bytes of a clean run of the new content."""
    corpus_file(tmp_path / "a.txt", 200_000, seed=4)
    config = {"inputs": [str(tmp_path / "a.txt")], "output": "out.txt", "seed": SEED, "memory_mb": 160,
              "chunk_mb": 1}
    release = tmp_path / "release"
    env = {**os.environ, "SNAKESHUF_SLOW_JOBS": "split_chunk-0", "SNAKESHUF_RELEASE": str(release)}
    running = subprocess.Popen(snakemake_command(tmp_path / "run", config), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "run").glob("scratch/*/locks/split_chunk-0.lock")):
        assert time.monotonic() < deadline and running.poll() is None, "the split job never started"
        time.sleep(0.1)
    with open(tmp_path / "a.txt", "r+b") as changed:  # the same inode and size, other records
        data = changed.read().translate(bytes.maketrans(b"abc", b"xyz"))
        changed.seek(0)
        changed.write(data)
    release.touch()
    _, stderr = running.communicate(timeout=120)
    logs = "".join(p.read_text() for p in (tmp_path / "run").glob("logs/**/*.log"))
    assert running.returncode != 0 and "Traceback" not in stderr
    assert f"input '{tmp_path / 'a.txt'}' was changed or replaced while the run read it" in logs
    assert not (tmp_path / "run" / "out.txt").exists()
    run_workflow(tmp_path / "run", config)
    run_workflow(tmp_path / "clean", config)
    assert (tmp_path / "run" / "out.txt").read_bytes() == (tmp_path / "clean" / "out.txt").read_bytes()


def test_only_failed_buckets_are_redone(tmp_path, corpus, reference):
    config = config_for(corpus)
    env = {**os.environ, "SNAKESHUF_FAIL_BUCKETS": "1,3"}
    failed = run_workflow(tmp_path, config, env=env, check=False)
    assert failed.returncode != 0 and "failure injected by SNAKESHUF_FAIL_BUCKETS" in failed.stderr
    hint = failed.stderr.rfind("snakeshuf: the run stopped before publishing 'out.txt'")
    assert hint > failed.stderr.rfind("failure injected"), "no hint after the failed job's log"
    assert not (tmp_path / "out.txt").exists()
    stats = {int(p.stem): json.loads(p.read_text()) for p in tmp_path.glob("scratch/*/buckets/*.json")}
    assert sorted(stats) == [0, 2]
    partial = (tmp_path / "out.txt.partial").read_bytes()
    logs_before = {b: p.stat().st_mtime_ns for b, p in bucket_logs(tmp_path).items()}

    # An upgrade between the failure and the rerun that leaves newer rule files
    # and scripts (the rules' commands the same): the plan, and every job after
    # it, stay done.
    for path in [*(REPO / "rules").glob("*.smk"), *(REPO / "scripts").glob("*.py")]:
        os.utime(path, (time.time(), time.time()))
    dry = run_workflow(tmp_path, config, "--dry-run")
    assert job_stats(dry.stdout) == {"shuffle_bucket": 2, "gather": 1, "all": 1}

    run_workflow(tmp_path, config)
    assert (tmp_path / "out.txt").read_bytes() == reference
    rerun = {b for b, p in bucket_logs(tmp_path).items() if p.stat().st_mtime_ns != logs_before[b]}
    assert rerun == {1, 3}
    for s in stats.values():
        region = slice(s["region"]["offset"], s["region"]["offset"] + s["bytes"])
        assert partial[region] == reference[region], f"bucket {s['bucket']} was rewritten"


def run_and_kill(workdir, config, should_kill, timeout=120):
    """Start snakemake in its own process group and SIGKILL the whole group as
    soon as should_kill(workdir) is true. Returns whether it was killed."""
    process = subprocess.Popen(
        snakemake_command(workdir, config), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if should_kill(workdir):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.02)
    process.wait()
    return False


def recover(workdir, config):
    """The recovery documented in docs/recovery.md: unlock once, then the same command."""
    run_workflow(workdir, config, "--unlock")
    run_workflow(workdir, config)


def final_names_are_complete_or_absent(workdir, reference):
    out = Path(workdir) / "out.txt"
    return not out.exists() or out.read_bytes() == reference


def logs_exist(rule):
    return lambda workdir: any(Path(workdir).glob(f"logs/*/{rule}/*.log"))


MOMENTS = {
    "split_chunk": logs_exist("split_chunk"),
    "shuffle_bucket": logs_exist("shuffle_bucket"),
    "gather": logs_exist("gather"),
    # the output renamed into place, Snakemake not yet told the job is done
    "publish": lambda workdir: (Path(workdir) / "out.txt").exists(),
}


@pytest.mark.parametrize("moment", MOMENTS)
def test_sigkill_during_each_stage(tmp_path, corpus, reference, moment):
    config = config_for(corpus)
    assert run_and_kill(tmp_path, config, MOMENTS[moment]), f"the run ended before {moment}"
    assert final_names_are_complete_or_absent(tmp_path, reference)
    recover(tmp_path, config)
    assert (tmp_path / "out.txt").read_bytes() == reference
    assert not [p for p in tmp_path.glob("scratch/**/*") if p.is_file()], "intermediates left behind"


@pytest.fixture(scope="module")
def mixing(tmp_path_factory):
    """A run that weights (1.5) and deduplicates a 40 MB corpus of every record
    twice, and what it publishes undisturbed."""
    d = tmp_path_factory.mktemp("mixing")
    corpus_file(d / "half.txt", 20 << 20, seed=4)
    half = (d / "half.txt").read_bytes()
    (d / "corpus.txt").write_bytes(half + half)
    corpus = str(d / "corpus.txt")
    config = config_for(corpus, weights={corpus: 1.5}, dedup="record")
    run_workflow(d / "undisturbed", config)
    return config, (d / "undisturbed" / "out.txt").read_bytes()


@pytest.mark.parametrize("moment", ["split_chunk", "tally_buckets", "shuffle_bucket"])
def test_sigkill_during_each_stage_of_a_run_that_weights_and_deduplicates(tmp_path, mixing, moment):
    config, undisturbed = mixing
    assert run_and_kill(tmp_path, config, logs_exist(moment)), f"the run ended before {moment}"
    assert final_names_are_complete_or_absent(tmp_path, undisturbed)
    recover(tmp_path, config)
    assert (tmp_path / "out.txt").read_bytes() == undisturbed


def test_sigkill_at_six_random_moments(tmp_path, corpus, undisturbed_run):
    rng = random.Random(5)
    reference, duration = undisturbed_run  # moments within an undisturbed run's span
    for attempt in range(6):
        workdir = tmp_path / f"run{attempt}"
        config = config_for(corpus)
        moment = time.monotonic() + rng.uniform(0.2, duration)
        run_and_kill(workdir, config, lambda _: time.monotonic() >= moment)
        assert final_names_are_complete_or_absent(workdir, reference)
        recover(workdir, config)
        assert (workdir / "out.txt").read_bytes() == reference, f"attempt {attempt}"


def test_a_job_killed_for_memory_succeeds_on_retry_with_more(tmp_path, corpus, reference):
    env = {**os.environ, "SNAKESHUF_OOM_BELOW_MB": "200"}
    result = run_workflow(tmp_path, config_for(corpus), env=env)
    assert "mem_mb=320" in result.stderr, "no job was retried with twice the memory"
    assert (tmp_path / "out.txt").read_bytes() == reference


def test_after_sigkill_the_same_command_resumes_with_no_unlock(tmp_path, corpus, reference):
    """Issue 28, item 4: Snakemake's own locks outlive a killed run; the
    output's lock (an flock, released by the kernel) shows the run is dead,
    so the same command clears the locks of that run and goes on."""
    config = config_for(corpus)
    assert run_and_kill(tmp_path, config, logs_exist("shuffle_bucket")), "the run ended before the shuffle"
    assert list((tmp_path / ".snakemake" / "locks").glob("*.lock")), "Snakemake left no lock to clear"
    result = run_workflow(tmp_path, config)
    assert "unlock" not in result.stderr.lower()
    assert (tmp_path / "out.txt").read_bytes() == reference
