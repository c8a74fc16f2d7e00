"""Every job's peak memory stays within memory_mb, for inputs far larger than it.

Each job reports the kernel's high-water mark of its resident memory
(VmHWM, exact); Snakemake's benchmark files sample the whole job
process tree (every 0.5 s at first). Both must stay within the budget.
"""

import csv
import glob
import os
from collections import Counter

import numpy as np

from conftest import corpus_file, job_reports, run_workflow
from snakeshuf.memory import MemoryModel

BUDGET_MB = 160


def benchmark_peaks(workdir):
    peaks = []
    for path in glob.glob(os.path.join(workdir, "benchmarks", "*", "*", "*.tsv")):
        with open(path) as handle:
            peaks += [float(row["max_rss"]) for row in csv.DictReader(handle, delimiter="\t")]
    return peaks


# A large plan has a tally job; in a small one the bucket jobs make the bucket table.
LARGE_PLAN_STAGES = {"split", "tally", "shuffle", "gather"}
SMALL_PLAN_STAGES = {"split", "shuffle", "gather"}


def assert_within_budget(workdir, stages):
    reports = job_reports(workdir)
    assert {r["stage"] for r in reports} == stages
    worst = max(reports, key=lambda r: r["peak_rss_mb"])
    assert worst["peak_rss_mb"] <= BUDGET_MB, worst
    sampled = benchmark_peaks(workdir)
    assert len(sampled) == len(reports)
    assert max(sampled) <= BUDGET_MB
    return reports


def test_input_twenty_times_the_budget(tmp_path):
    """3.2 GB of realistic lines (a 64 MB corpus, tiled) through 160 MB jobs."""
    block = tmp_path / "block.txt"
    corpus_file(block, 64 << 20, seed=21)
    data = block.read_bytes()
    size = 20 * BUDGET_MB << 20
    with open(tmp_path / "big.txt", "wb") as out:
        for _ in range(-(-size // len(data))):
            out.write(data)
    block.unlink()
    assert os.path.getsize(tmp_path / "big.txt") >= size
    run_workflow(tmp_path, {"inputs": ["big.txt"], "output": "out.txt", "memory_mb": BUDGET_MB})
    reports = assert_within_budget(tmp_path, LARGE_PLAN_STAGES)
    shuffled = [r["bytes"] for r in reports if r["stage"] == "shuffle"]
    holds = MemoryModel(BUDGET_MB).shuffle_bytes
    assert len(shuffled) >= 2 and min(shuffled) > 2 * holds  # more than it holds: a key range or two at a time
    assert os.path.getsize(tmp_path / "out.txt") == os.path.getsize(tmp_path / "big.txt")


def test_tiny_records_take_extra_passes_not_extra_memory(tmp_path):
    """8 million 2-4 byte lines: per-record arrays outweigh the bytes, so the
    shuffle jobs must fall back to several passes over key sub-ranges."""
    values = np.random.default_rng(8).integers(0, 1000, 8_000_000)
    source = b"".join(b"%d\n" % v for v in values)
    (tmp_path / "short.txt").write_bytes(source)
    run_workflow(tmp_path, {"inputs": ["short.txt"], "output": "out.txt", "memory_mb": BUDGET_MB})
    reports = assert_within_budget(tmp_path, SMALL_PLAN_STAGES)
    assert max(r.get("passes", 1) for r in reports) > 1
    output = (tmp_path / "out.txt").read_bytes()
    assert Counter(output.split(b"\n")) == Counter(source.split(b"\n"))
