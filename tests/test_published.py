"""Nothing wrong is ever published: the cases where a run once exited 0 with a
wrong output, or destroyed an input, each kept as a test."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import assert_published_as_the_reference, decompressed, run_workflow, snakemake_command
from differential import check_scenario
from reference import expected_outputs
from scenarios import FileSpec, Run, Scenario

# Tiny records (~4 bytes) with some sentence-level ones (~60 bytes) at the
# smallest budget: key ranges, planned for 128-byte records, take several passes.
SHORT_RECORDS = (FileSpec(1000, "short", seed=1), FileSpec(6000, "tiny", seed=2), FileSpec(2000, "tiny", seed=3))
MULTI_PASS_RUNS = (Run(memory_mb=160, unit=4096), Run(memory_mb=161, unit=2048, chunks=2, cores=1))

MULTI_PASS_LAYOUTS = {
    "zstd splits": dict(output="out/c.jsonl.zst", splits=(("valid", 0.01, 1), ("test", 1000, 1), ("train", "rest", 8))),
    "gzip splits": dict(output="out/c.jsonl.gz", splits=(("valid", 0.01, 1), ("test", 1000, 1), ("train", "rest", 8))),
    "shards with a header": dict(output="out/c.tsv", shards=4, header_lines=1),
}


@pytest.mark.parametrize("layout", MULTI_PASS_LAYOUTS)
def test_layouts_cut_buckets_that_take_several_passes_where_the_reference_does(layout):
    facts = check_scenario(Scenario(files=SHORT_RECORDS, runs=MULTI_PASS_RUNS, **MULTI_PASS_LAYOUTS[layout]))
    assert "key ranges per bucket: 2+" in facts and "most passes in a bucket: 1" not in facts, facts


# --- the run's own files are never its inputs ------------------------------


def make_inputs(directory, count=3, lines=2000):
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (directory / f"{i}.txt").write_bytes(b"".join(b"%d line %d\n" % (i, j) for j in range(lines)))


def contents_of(paths):
    return [Path(p).read_bytes() for p in paths]


@pytest.mark.parametrize(
    "input_name, output",
    [("big.txt.partial", "big.txt"), ("notes.summary.json", "notes"), ("o.txt.lock", "o.txt")],
)
def test_an_input_that_is_the_runs_own_file_is_refused_and_left_alone(workdir, input_name, output):
    data = b"precious\ndata\n" * 100
    (workdir / input_name).write_bytes(data)
    result = run_workflow(workdir, {"inputs": [input_name], "output": output}, check=False)
    assert result.returncode != 0
    assert f"input '{input_name}' is the " in result.stderr and "a run never reads what it writes" in result.stderr
    assert not (workdir / "logs").exists(), "a job ran"
    assert (workdir / input_name).read_bytes() == data


@pytest.mark.parametrize("spelling", ["absolute", "as written"])
def test_earlier_outputs_matched_by_an_input_pattern_are_refused_never_deleted(workdir, spelling):
    make_inputs(workdir / "data")
    config = {"inputs": ["data/*.txt"], "output": "shards/out.txt", "shards": 2}
    run_workflow(workdir, config)
    shards = sorted((workdir / "shards").glob("out.0000*"))
    before = contents_of(shards)
    pattern = str(workdir / "shards" / "out.*") if spelling == "absolute" else "shards/out.*"
    result = run_workflow(workdir, {**config, "inputs": ["data/*.txt", pattern]}, check=False)
    assert result.returncode != 0
    assert f"input pattern '{pattern}' matches" in result.stderr and "of this run" in result.stderr
    assert contents_of(shards) == before


def test_a_failed_run_whose_output_is_inside_the_input_glob_finishes_when_run_again(workdir):
    make_inputs(workdir / "data", lines=60_000)
    config = {"inputs": ["data/*"], "output": "data/out.txt", "memory_mb": 160}
    small_unit = {**os.environ, "SNAKESHUF_MIB_BYTES": "65536"}
    failed = run_workflow(workdir, config, env={**small_unit, "SNAKESHUF_FAIL_BUCKETS": "1"}, check=False)
    assert failed.returncode != 0 and (workdir / "data" / "out.txt.partial").exists()
    run_workflow(workdir, config, env=small_unit)  # which compares the output with the reference model
    again = {**config, "output": "data/again.txt", "scratch": "data"}  # scratch inside the glob too
    run_workflow(workdir, again, env=small_unit)
    assert (workdir / "data" / "again.txt").read_bytes() != (workdir / "data" / "out.txt").read_bytes()


# --- one writer per output ------------------------------------------------------


def test_a_second_run_on_the_same_output_is_refused_at_once(tmp_path):
    make_inputs(tmp_path / "data", count=4, lines=200_000)
    inputs = sorted(str(p) for p in (tmp_path / "data").glob("*.txt"))
    output = str(tmp_path / "shared" / "out.txt")
    first_config = {"inputs": inputs, "output": output, "seed": 1, "memory_mb": 160}
    env = {**os.environ, "SNAKESHUF_MIB_BYTES": "65536"}
    release = tmp_path / "release"  # the first run is still going when the others start, until this exists
    slow = {**env, "SNAKESHUF_SLOW_JOBS": "shuffle_bucket-0", "SNAKESHUF_RELEASE": str(release)}
    first = subprocess.Popen(
        snakemake_command(tmp_path / "first", first_config), env=slow,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not list((tmp_path / "first").glob("logs/*/split_chunk/*.log")) and time.monotonic() < deadline:
        time.sleep(0.05)
    for seed in (2, 1):  # another order, then the same one
        second = run_workflow(tmp_path / f"second-{seed}", {**first_config, "seed": seed}, env=env, check=False)
        assert second.returncode != 0
        assert f"output '{output}' is being written by another run (snakeshuf PID {first.pid} on" in second.stderr
        assert not (tmp_path / f"second-{seed}" / "logs").exists(), "the second run started a job"
    # In the first run's directory Snakemake's own lock refuses it first, and
    # says to --unlock it; the run that holds it is named, alive.
    same_directory = run_workflow(tmp_path / "first", first_config, env=env, check=False)
    assert same_directory.returncode != 0
    assert f"is being written by another run (snakeshuf PID {first.pid} on" in same_directory.stderr
    assert first.poll() is None
    release.touch()
    assert first.wait(timeout=300) == 0, first.stderr.read()[-3000:]
    assert_published_as_the_reference(tmp_path, first_config)
    assert not Path(output + ".lock").exists()


def running_job(workdir, job, deadline):
    """The argv of the process running `job` of the run in `workdir`, once it
    is held (SNAKESHUF_SLOW_JOBS) where it has claimed the job."""
    script, _, wildcard = job.partition("-")
    while time.monotonic() < deadline:
        if list(workdir.glob(f"scratch/*/locks/{job}.lock")):
            for process in Path("/proc").glob("[0-9]*"):
                try:
                    argv = (process / "cmdline").read_bytes().decode().split("\0")[:-1]
                    ours = (process / "cwd").resolve() == workdir.resolve()  # not another run's job
                except OSError:
                    continue
                if ours and any(a.endswith(f"/{script}.py") for a in argv) and (not wildcard or wildcard in argv):
                    time.sleep(0.5)  # from the lock file's creation to the hold
                    return argv
        time.sleep(0.05)
    raise AssertionError(f"job {job} did not start")


@pytest.mark.parametrize("job", ["split_chunk-1", "shuffle_bucket-0", "gather"])
def test_a_second_instance_of_a_running_job_stops_without_writing_anything(tmp_path, job):
    """Issue 34: a stray copy of a job (a requeued cluster job, its command run
    by hand) while the job runs ends in a clear failure, never a mixed file."""
    make_inputs(tmp_path / "data", count=4, lines=20_000)
    config = {"inputs": sorted(str(p) for p in (tmp_path / "data").glob("*.txt")), "output": "out.txt",
              "seed": 5, "memory_mb": 160, "chunk_mb": 4, "shards": 2}
    env = {**os.environ, "SNAKESHUF_MIB_BYTES": "65536"}
    release = tmp_path / "release"
    first = subprocess.Popen(
        snakemake_command(tmp_path / "run", config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**env, "SNAKESHUF_SLOW_JOBS": job, "SNAKESHUF_RELEASE": str(release)},
    )
    try:
        argv = running_job(tmp_path / "run", job, time.monotonic() + 120)
        stray = subprocess.run(argv, cwd=tmp_path / "run", env={**env, "SNAKESHUF_CLAIM_WAIT_SECONDS": "1"},
                               capture_output=True, text=True, timeout=60)
    finally:
        release.touch()
    assert stray.returncode == 1
    said = stray.stderr + stray.stdout
    assert f"snakeshuf: error: job {job} of this run is held by snakeshuf PID " in said
    assert "this instance waited 1 s for it and stopped without writing anything" in said
    assert "Traceback" not in said
    assert first.wait(timeout=300) == 0, first.stderr.read()[-3000:]
    assert_published_as_the_reference(tmp_path / "run", config)


# --- configuration and names ----------------------------------------------------


@pytest.mark.parametrize(
    "setting, message",
    [
        ("seed=1e3", "config key 'seed' must be an integer (it is 1000.0)"),
        ("header_lines=0.0", "config key 'header_lines' must be an integer (it is 0.0)"),
        ("shards=2.0", "config key 'shards' must be an integer (it is 2.0)"),
        ("seed=-1", "config key 'seed': -1 is less than the minimum of 0"),
        (f"seed={2**64}", f"config key 'seed': {2**64} is greater than the maximum of {2**64 - 1}"),
    ],
)
def test_numbers_of_the_wrong_kind_are_refused_before_any_job(workdir, setting, message):
    make_inputs(workdir / "data")
    result = run_workflow(workdir, {"inputs": ["data/*.txt"], "output": "o.txt"}, "--config", setting, check=False)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
    assert not (workdir / "logs").exists(), "a job ran"


def test_seeds_at_both_ends_of_the_range_give_their_own_orders(workdir):
    make_inputs(workdir / "data")
    inputs = sorted(str(p) for p in (workdir / "data").glob("*.txt"))
    outputs = []
    for seed in (0, 1, 2**63, 2**64 - 1):
        run_workflow(workdir, {"inputs": inputs, "output": f"o-{seed}.txt", "seed": seed})  # checked against the model
        outputs.append((workdir / f"o-{seed}.txt").read_bytes())
    assert len(set(outputs)) == 4


@pytest.mark.parametrize("layout", [{}, {"shards": 3, "output": "e.txt.zst"}])
def test_empty_inputs_give_an_empty_output_and_a_summary(workdir, layout):
    (workdir / "a.txt").write_bytes(b"")
    (workdir / "b.txt").write_bytes(b"")
    config = {"inputs": ["a.txt", "b.txt"], "output": "e.txt", **layout}
    run_workflow(workdir, config)
    expected = expected_outputs(config, [b"", b""])
    for path in expected:
        assert decompressed(workdir / path) == b""
    summary = json.loads((workdir / (config["output"] + ".summary.json")).read_text())
    assert summary["records"] == 0 and list(summary["outputs"]) == list(expected)


@pytest.mark.parametrize("key", ["inputs", "output", "scratch"])
def test_braces_in_a_path_are_refused_before_any_job(workdir, key):
    (workdir / "in{1}.txt").write_bytes(b"a\nb\n")
    (workdir / "in.txt").write_bytes(b"a\nb\n")
    config = {"inputs": ["in.txt"], "output": "out.txt", "scratch": "scratch"}
    config[key] = {"inputs": ["in{1}.txt"], "output": "o{u}t.txt", "scratch": "s{c}"}[key]
    result = run_workflow(workdir, config, check=False)
    assert result.returncode != 0 and "Snakemake reads as wildcards" in result.stderr
    assert "WildcardError" not in result.stderr and not (workdir / "logs").exists()


def test_an_output_name_too_long_for_the_filesystem_is_refused_before_any_job(workdir):
    (workdir / "in.txt").write_bytes(b"a\nb\n")
    output = "o" * 244
    result = run_workflow(workdir, {"inputs": ["in.txt"], "output": output}, check=False)
    assert result.returncode != 0
    assert f"'{output}.summary.json.partial', whose name is 265 bytes long" in result.stderr
    assert not (workdir / "logs").exists() and not list(workdir.glob("o*"))
