"""Every job's peak memory stays within memory_mb, for inputs far larger than it.

Each job reports the kernel's high-water mark of its resident memory
(VmHWM, exact); Snakemake's benchmark files sample the whole job
process tree (every 0.5 s at first). Both must stay within the budget.
"""

import csv
import glob
import os
import re
import subprocess
from collections import Counter

import numpy as np
import pytest

from conftest import corpus_file, job_reports, run_workflow
from snakeshuf.planning.memory import MemoryModel

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


def assert_within_budget(workdir, stages, budget_mb=BUDGET_MB):
    reports = job_reports(workdir)
    assert {r["stage"] for r in reports} == stages
    worst = max(reports, key=lambda r: r["peak_rss_mb"])
    assert worst["peak_rss_mb"] <= budget_mb, worst
    sampled = benchmark_peaks(workdir)
    assert len(sampled) == len(reports)
    assert max(sampled) <= budget_mb
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
    source = ("\n".join(map(str, values.tolist())) + "\n").encode()  # as b"%d\n" per value, in 2 s of 5
    (tmp_path / "short.txt").write_bytes(source)
    run_workflow(tmp_path, {"inputs": ["short.txt"], "output": "out.txt", "memory_mb": BUDGET_MB})
    reports = assert_within_budget(tmp_path, SMALL_PLAN_STAGES)
    assert max(r.get("passes", 1) for r in reports) > 1
    output = (tmp_path / "out.txt").read_bytes()
    assert Counter(output.split(b"\n")) == Counter(source.split(b"\n"))


TAIL_READER = """
import sys
sys.path.insert(0, sys.argv[1])
from snakeshuf.errors import InputError
from snakeshuf.records.aligned import aligned_batches
from snakeshuf.records.lines import Unchecked
files = [Unchecked(path, None) for path in sys.argv[2:]]
try:
    for batch in aligned_batches(files, 10, 8 << 20, 1 << 20):  # 10: newline
        pass
except InputError as error:  # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's)
    peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(peak_kb // 1024, error)
"""


def test_an_unmatched_tail_of_paired_files_is_counted_not_held(tmp_path):
    """Hostile pass, item 5: a 200 MB tail was held whole (508-517 MB at
    memory_mb 256) before the error."""
    import subprocess
    import sys

    from conftest import REPO

    lines = b"".join(b"line %d\n" % i for i in range(1000))
    (tmp_path / "a.de").write_bytes(lines)
    with open(tmp_path / "a.en", "wb") as out:
        out.write(lines)
        tail = b"x" * 99 + b"\n"
        for _ in range(200):
            out.write(tail * 10_000)  # 1 MB at a time: 200 MB, 2 million lines more
    result = subprocess.run(
        [sys.executable, "-c", TAIL_READER, str(REPO / "scripts"), str(tmp_path / "a.de"), str(tmp_path / "a.en")],
        capture_output=True, text=True, check=True,
    )
    peak_mb, message = result.stdout.split(" ", 1)
    assert "(1,000 lines)" in message and "(2,001,000 lines) are not aligned" in message
    assert int(peak_mb) < 120, f"{peak_mb} MB to count a 200 MB tail"


@pytest.mark.parametrize(
    "budget_mb, long_mb, longs, seed, output",
    [(160, 7.5, 30, 1, "out.txt"), (160, 7.5, 30, 2, "out.txt.gz"), (256, 30, 9, 4, "out.txt")],
)
def test_a_few_long_records_among_many_short_ones_stay_within_budget(tmp_path, budget_mb, long_mb, longs, seed, output):
    """Hostile pass, item 4: long records (under the documented limit of
    (memory_mb - 128) / 4 MiB) took output slices of several whole records,
    and a key range read in passes kept joined copies: 457 MB at 256, 195-210
    MB at 160. Each pass now holds what it measured, and a long record is
    written from where it lies."""
    rng = np.random.default_rng(seed)
    records = [b"short %d\n" % i for i in range(1000 * longs)]
    for place in rng.integers(0, len(records), longs):
        records.insert(int(place), b"L" * (int(long_mb * 2**20) - 1) + b"\n")
    (tmp_path / "in.txt").write_bytes(b"".join(records))
    run_workflow(tmp_path, {"inputs": ["in.txt"], "output": output, "memory_mb": budget_mb, "seed": seed},
                 "--retries", "0")
    assert_within_budget(tmp_path, SMALL_PLAN_STAGES, budget_mb)


def test_a_record_too_long_for_a_bucket_jobs_passes_is_retried_with_more_memory_not_read_for_ever(tmp_path):
    """Found by a hostile pass: one 30 MiB record among 20,000 short lines at
    160 MB. The split job refuses it and its retry at twice the memory takes
    it; the bucket job, at 160 MB, planned one pass per fine key sub-range,
    each reading the whole key range (267 GB read in 15 minutes). It now
    refuses too, naming the memory it needs, and its retry finishes."""
    with open(tmp_path / "in.txt", "wb") as out:
        for i in range(20_000):
            if i == 10_000:
                out.write(b"B" * (30 * 2**20 - 1) + b"\n")
            out.write(b"%d short\n" % i)
    result = run_workflow(tmp_path, {"inputs": ["in.txt"], "output": "out.txt", "memory_mb": 160})
    assert "too long to order in passes with memory_mb=160; set memory_mb to at least" in result.stderr
    shuffles = [r for r in job_reports(tmp_path) if r["stage"] == "shuffle"]
    assert all(r["peak_rss_mb"] <= r["memory_mb"] for r in shuffles), shuffles


@pytest.mark.parametrize("name, compress, needed", [
    ("dict.xz", ["xz", "-T1", "--lzma2=preset=1,dict=512MiB"], 1152),
    ("long.zst", ["zstd", "-q", "-T1", "--long=27"], 384),
])
def test_a_compressed_input_whose_decoder_needs_more_than_the_budget_is_refused_naming_the_memory(
    tmp_path, name, compress, needed
):
    """Found by a hostile pass: a valid xz file with a 512 MiB dictionary
    took a split job to 361 MB at memory_mb=160, and zstd --long=27 to 254
    MB, exit 0. A window of up to half a job's usable memory is decoded; a
    larger one is refused, and the memory it names works."""
    data = b"".join(b"%d\n" % i for i in range(200_000))
    (tmp_path / name).write_bytes(subprocess.run(compress, input=data, capture_output=True, check=True).stdout)
    config = {"inputs": [name], "output": "out.txt", "memory_mb": 160}
    result = run_workflow(tmp_path, config, check=False)
    assert result.returncode != 0 and not (tmp_path / "out.txt").exists()
    assert "its decoder needs a window of" in result.stderr
    assert f"set memory_mb to at least {needed}" in result.stderr
    run_workflow(tmp_path, {**config, "memory_mb": needed})
    assert all(r["peak_rss_mb"] <= needed for r in job_reports(tmp_path) if r["stage"] == "split")


def parquet_table(rows, text_bytes, seed):
    """Rows of a text column of `text_bytes` each (distinct), with small columns beside it."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"abcdefgh ", np.uint8)
    data = letters[rng.integers(0, 9, rows * text_bytes, dtype=np.uint8)]  # at once: a row at a time took 13 s
    offsets = np.arange(0, (rows + 1) * text_bytes, text_bytes, dtype=np.int32)
    texts = pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data))
    return pa.table({"text": texts, "id": np.arange(rows), "score": rng.random(rows)})


@pytest.mark.parametrize("rows, text_bytes, files, page_rows, shards, memory_mb", [
    (400_000, 150, 3, 64, None, 256), (120, 1 << 20, 1, 1, None, 256), (400_000, 150, 3, 64, 4, 256),
    (120, 1 << 20, 1, 1, None, 512)], ids=["narrow", "wide", "narrow in 4 shards", "wide, row groups encoded at once"])
def test_parquet_rows_narrow_and_wide_in_row_groups_larger_than_the_budget(tmp_path, rows, text_bytes, files,
                                                                           page_rows, shards, memory_mb):
    """Each file is one row group of ~120 MB, against a 256 MB budget: read in
    batches, encoded, shuffled and written as row groups of row_group_mb. In
    shards, gather writes one file after another (found: it wrote up to four
    at once, each with its own row groups: 319 MB). With more memory, gather
    encodes several row groups at once."""
    import pyarrow.parquet as pq

    inputs = []
    for i in range(files):
        path = tmp_path / f"t{i}.parquet"
        pq.write_table(parquet_table(rows, text_bytes, seed=i), path, row_group_size=rows, write_batch_size=page_rows,
                       use_dictionary=False)
        inputs.append(str(path))
    config = {"inputs": inputs, "output": "s.parquet", "memory_mb": memory_mb, "parquet": {"row_group_mb": 20}}
    if shards:
        config["shards"] = shards
    run_workflow(tmp_path / "run", config, cores=4)  # and compared with the reference model
    reports = assert_within_budget(tmp_path / "run", SMALL_PLAN_STAGES, memory_mb)
    gathered = next(r for r in reports if r["stage"] == "gather")
    assert (gathered["row_groups_at_once"] > 2) == (memory_mb > 256), gathered
    outputs = sorted(glob.glob(str(tmp_path / "run" / "s*.parquet")))
    metas = [pq.ParquetFile(path).metadata for path in outputs]
    assert len(metas) == (shards or 1) and sum(m.num_rows for m in metas) == rows * files
    assert all(m.num_row_groups > 4 // len(metas) for m in metas)


def token_lists(path):
    """Pre-tokenized text: 6,000 rows of 2,000 int32 tokens (9 bytes each encoded)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    offsets = np.arange(0, 6001 * 2000, 2000, dtype=np.int32)
    tokens = pa.ListArray.from_arrays(offsets, pa.array(rng.integers(0, 50_000, 6000 * 2000, dtype=np.int32)))
    pq.write_table(pa.table({"tokens": tokens}), path)


def thousands_of_columns(path):
    """2,000 rows of 3,000 int64 columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({f"c{j}": np.arange(2000) * j for j in range(3000)}), path)


@pytest.mark.parametrize("make", [token_lists, thousands_of_columns], ids=["token lists", "3,000 columns"])
def test_parquet_rows_of_many_small_values_stay_within_budget(tmp_path, make):
    """Found by a hostile pass: encoding a batch took up to 14x its bytes (an
    offset per value joined through a gather index), so a split job peaked at
    1,162 MB (token lists) and 668 MB (3,000 columns) at a 512 MB budget."""
    make(tmp_path / "t.parquet")
    run_workflow(tmp_path / "run", {"inputs": [str(tmp_path / "t.parquet")], "output": "s.parquet", "memory_mb": 512})
    assert_within_budget(tmp_path / "run", SMALL_PLAN_STAGES, 512)


def test_a_parquet_row_longer_than_a_split_job_reads_is_retried_with_the_memory_it_names(tmp_path):
    """Found by a hostile pass: one 90 MiB row peaked at 598 MB at a 512 MB
    budget, which claimed rows of up to 96 MiB. A row is a quarter of that now
    (it is read, encoded and copied beside the block): the first attempt
    names the memory_mb that reads a 30 MiB row, the retry at twice the
    budget reads it, and every job stays within its own memory_mb."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [f"row {i}" for i in range(1000)]
    texts[500] = "Z" * (30 << 20)
    pq.write_table(pa.table({"id": range(1000), "text": pa.array(texts, pa.large_string())}), tmp_path / "t.parquet")
    result = run_workflow(tmp_path / "run", {"inputs": [str(tmp_path / "t.parquet")], "output": "s.parquet",
                                             "memory_mb": 512})
    assert "(with memory_mb=512 the longest is 25165824 bytes); set memory_mb to at least" in result.stderr
    reports = job_reports(tmp_path / "run")
    assert all(r["peak_rss_mb"] <= r.get("memory_mb", 512) for r in reports), reports  # gather: the budget
    assert {r["memory_mb"] for r in reports if r["stage"] == "split"} == {1024}


def test_a_parquet_page_larger_than_the_budget_is_refused_before_any_job_naming_file_row_group_and_memory(tmp_path):
    """pyarrow cuts pages only between write batches (1,024 values by
    default): 200 rows of 1 MiB are one 200 MiB page, which is read whole."""
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(parquet_table(200, 1 << 20, seed=1), path, row_group_size=100, use_dictionary=False,
                   compression="none")
    result = run_workflow(tmp_path / "run", {"inputs": [str(path)], "output": "s.parquet", "memory_mb": 320,
                                             "parquet": {"row_group_mb": 20}}, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"input '{path}': row group 0 holds pages that take 200 MiB to read" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "run" / "logs").exists(), "a job ran"
    suggested = int(re.search(r"set memory_mb to at least (\d+)", result.stderr).group(1))
    assert 128 + 2 * 200 <= suggested <= 128 + 2 * 202  # two pages of 200 MiB (and the small columns'), then 128
    run_workflow(tmp_path / "again", {"inputs": [str(path)], "output": "s.parquet", "memory_mb": suggested,
                                      "parquet": {"row_group_mb": 20}})
    assert_within_budget(tmp_path / "again", SMALL_PLAN_STAGES, suggested)


def test_a_large_value_repeated_through_a_parquet_dictionary_stays_within_budget(tmp_path):
    """Hostile pass: a 1 MB file of 250 rows sharing one 1 MiB value (stored
    once, in the column's dictionary) is 250 MiB of rows once read, which the
    plan cannot see. The split job sized its batches by the file (1,579 MB
    peak at a 512 MB budget), and a bucket job taking a key range in passes
    held two passes at once (576 MB); both now stay within 256 MB."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "repeated.parquet"
    pq.write_table(pa.table({"id": range(250), "blob": pa.array([os.urandom(1 << 20)] * 250, pa.binary())}), path)
    config = {"inputs": [str(path)], "output": "s.parquet", "memory_mb": 256, "parquet": {"row_group_mb": 20}}
    run_workflow(tmp_path / "run", config)
    reports = assert_within_budget(tmp_path / "run", SMALL_PLAN_STAGES, 256)
    assert max(r.get("passes", 0) for r in reports) > 1  # the bucket job took its key range in passes
