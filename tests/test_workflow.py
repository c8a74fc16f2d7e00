"""The whole workflow on real files: nothing lost, nothing altered, and an order
that depends on the inputs and the seed only."""

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import corpus_file, records_of, run_workflow, snakemake_command


def write(path, data):
    path.write_bytes(data)
    return str(path)


@pytest.fixture(scope="module")
def corpus_60mb(tmp_path_factory):
    return corpus_file(tmp_path_factory.mktemp("corpus") / "corpus.txt", 60 << 20, seed=9)


@pytest.fixture(scope="module")
def awkward_inputs(tmp_path_factory, corpus_60mb):
    """Inputs that break naive line handling, plus a generated corpus."""
    d = tmp_path_factory.mktemp("awkward")
    return [
        write(d / "empty.txt", b""),
        write(d / "no-final-newline.txt", b"first\nsecond\nlast without newline"),
        write(d / "crlf.txt", b"windows line\r\n" * 50 + b"\r\n\r\n"),
        write(d / "nul.bin", b"nul\x00inside\n\x00\n" * 40 + b"\x00\x00\x00\n"),
        write(d / "latin1.txt", "caf\xe9 na\xefve\n".encode("latin-1") * 30 + b"\xff\xfe\x80\n"),
        write(d / "duplicates.txt", b"same line\n" * 5000 + b"\n" * 3000),
        write(d / "huge-line.txt", b"short\n" + b"x" * (3 << 20) + b"\nshort again\n"),
        corpus_60mb,
    ]


def expected_records(paths):
    records = Counter()
    for path in paths:
        records.update(records_of(path))
    return records


def test_output_is_a_permutation_of_the_input_records(workdir, awkward_inputs):
    config = {"inputs": awkward_inputs, "output": "out/shuffled.txt", "memory_mb": 160, "chunk_mb": 7}
    run_workflow(workdir, config)
    output = records_of(workdir / "out/shuffled.txt")
    assert Counter(output) == expected_records(awkward_inputs)
    summary = json.loads((workdir / "out/shuffled.txt.summary.json").read_text())
    assert summary["records"] == len(output)
    assert summary["buckets"] > 1, "the test must exercise several buckets"
    assert output != [r for p in awkward_inputs for r in records_of(p)], "output is in input order"


def test_intermediates_are_removed_after_success(workdir, awkward_inputs):
    config = {"inputs": awkward_inputs[:3], "output": "shuffled.txt", "scratch": "tmp-scratch"}
    run_workflow(workdir, config)
    leftovers = [p for p in (workdir / "tmp-scratch").rglob("*") if p.is_file()]
    assert leftovers == []


def test_the_plan_file_holds_exactly_the_spec_its_name_hashes(workdir, awkward_inputs):
    config = {"inputs": awkward_inputs[:3], "output": "shuffled.txt", "scratch": "kept"}
    run_workflow(workdir, config, "--notemp")
    [plan] = (workdir / "kept").glob("*/plan-*.json")
    assert plan.name == f"plan-{hashlib.sha1(plan.read_bytes()).hexdigest()[:12]}.json"
    assert json.loads(plan.read_bytes())["files"][0][0] == awkward_inputs[0]


def test_a_run_without_hooks_says_why_it_cannot_start(workdir, awkward_inputs):
    """--no-hooks skips onstart, which writes the plan file (and makes the
    checks and takes the output's lock)."""
    config = {"inputs": awkward_inputs[:3], "output": "shuffled.txt"}
    result = run_workflow(workdir, config, "--no-hooks", check=False)
    assert result.returncode != 0
    assert "snakeshuf: error: onstart writes the plan file, and --no-hooks skips it" in result.stderr
    assert not (workdir / "shuffled.txt").exists()


def test_no_staged_plan_file_is_left_in_a_kept_scratch(workdir, awkward_inputs):
    """onstart stages the plan file on every run with jobs; a run that does
    not need it (the plan is there) must not leave it behind."""
    config = {"inputs": awkward_inputs[:3], "output": "shuffled.txt", "scratch": "kept"}
    run_workflow(workdir, config, "--until", "split_chunk")
    run_workflow(workdir, config, "--until", "shuffle_bucket")
    assert list((workdir / "kept").rglob("plan-*.json"))
    assert not list((workdir / "kept").rglob("*.staged"))


# Runs Snakemake as the run environment (.venv) has it, without the SLURM
# executor plugin of the test environment, which imports pandas itself.
WITHOUT_SLURM_PLUGIN = """
import pkgutil, runpy, sys
every_module = pkgutil.iter_modules
pkgutil.iter_modules = lambda *a, **k: (m for m in every_module(*a, **k) if "slurm" not in m.name)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_snakemake_does_not_import_pandas_in_a_run(workdir, awkward_inputs):
    """Snakemake imports pandas (0.3 s) to record a finished job's params, and
    to build the job object of a template rule: snakeshuf's rules have neither."""
    config = {"inputs": awkward_inputs[:2], "output": "shuffled.txt"}
    command = [sys.executable, "-X", "importtime", "-c", WITHOUT_SLURM_PLUGIN, *snakemake_command(workdir, config)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "snakemake.persistence" in imported, "no import profile: the check below would pass vacuously"
    assert "snakemake_executor_plugin_slurm" not in imported
    assert "pandas" not in imported


def shuffled_bytes(workdir, inputs, cores=2, **config):
    config = {"inputs": inputs, "output": "shuffled.txt", **config}
    run_workflow(workdir, config, cores=cores)
    summary = json.loads((Path(workdir) / "shuffled.txt.summary.json").read_text())
    return (Path(workdir) / "shuffled.txt").read_bytes(), summary


def test_order_depends_only_on_inputs_and_seed(tmp_path, corpus_60mb):
    inputs = [corpus_60mb]
    variants = {
        "160 MB": dict(memory_mb=160, chunk_mb=8),
        "192 MB": dict(memory_mb=192, chunk_mb=8),
        "288 MB": dict(memory_mb=288, chunk_mb=8),
        "other chunks": dict(memory_mb=160, chunk_mb=23),
        "one core": dict(memory_mb=160, chunk_mb=8, cores=1),
    }
    results = {
        name: shuffled_bytes(tmp_path / name.replace(" ", "-"), inputs, seed=3, **options)
        for name, options in variants.items()
    }
    layouts = {name: (summary["buckets"], summary["key_ranges"]) for name, (_, summary) in results.items()}
    assert len({layouts[n] for n in ("160 MB", "192 MB", "288 MB")}) == 3, layouts
    reference = results["160 MB"][0]
    for name, (data, _) in results.items():
        assert data == reference, f"output with {name} differs from 160 MB"
    other_seed, _ = shuffled_bytes(tmp_path / "seed-4", inputs, seed=4, memory_mb=160, chunk_mb=8)
    assert other_seed != reference
    assert sorted(records_of_bytes(other_seed)) == sorted(records_of_bytes(reference))


def records_of_bytes(data):
    return data.split(b"\n")



def test_progress_in_bytes_from_the_main_process_and_in_each_job_log(tmp_path):
    corpus = corpus_file(tmp_path / "corpus.txt", 24 << 20, seed=5)
    env = {**os.environ, "SNAKESHUF_PROGRESS_SECONDS": "0"}
    result = run_workflow(tmp_path, {"inputs": [corpus], "output": "out.txt", "memory_mb": 160}, env=env)
    shares = [int(m) for m in re.findall(r"snakeshuf: progress (\d+)% of 24\.0 MiB", result.stderr)]
    assert shares and all(0 <= s <= 100 for s in shares) and max(shares) >= 50, result.stderr[-3000:]
    assert shares == sorted(shares), "progress went backwards"
    for log in (tmp_path / "logs").glob("*/split_chunk/*.log"):
        done = [float(m.replace(",", "")) for m in re.findall(r"progress: chunk \d+: ([\d,.]+) MiB of", log.read_text())]
        assert done and done == sorted(done), f"{log.name}: no progress lines, or not increasing"
