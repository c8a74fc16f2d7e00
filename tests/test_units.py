"""The pieces the workflow is made of, checked against plain-Python references."""

import errno
import fcntl
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
import yaml

from snakeshuf.control import progress
from snakeshuf.errors import ConfigError, JobClash, LayoutError, RecordTooLarge
from snakeshuf.outputs import destinations
from snakeshuf.outputs import layout as outputs
from snakeshuf.outputs.layout import output_paths, read_layout
from snakeshuf.outputs.namespace import RunFiles
from snakeshuf.planning import keys as keylib
from snakeshuf.planning.config import check_config
from snakeshuf.planning.memory import INDEX_ROW_BYTES, INDEX_SHARE, MemoryModel
from snakeshuf.planning.plan import (
    AUTO_CHUNK_TARGET_COUNT, MAX_JOBS, Chunking, InputFile, auto_chunk_bytes, cut_chunks, make_plan,
)
from snakeshuf.records.lines import RecordReader
from snakeshuf.stages import jobs, runindex, tally
from snakeshuf.stages.integrity import checksum
from snakeshuf.stages.runfile import Spill, section_checksum, spill_rows
from snakeshuf.stages.runindex import (
    CHECKSUM, DATA_OFFSET, KEY_OFFSET, KEY_RANGE, KEY_SUM, LENGTH_OFFSET, NBYTES, RECORDS, TAG_OFFSET,
)
from snakeshuf.stages.scratch import Scratch
from sort_keys import keys_of_one_key_range  # bench/, on the path by conftest


REPO = Path(__file__).resolve().parent.parent


def output_named(path):
    """The files of a run whose one output is `path` (and no scratch)."""
    return RunFiles(str(path), (str(path),), ())


def records_from_ranges(path, size, cuts, buffer_bytes, max_records=None, sep=10):
    """(offset, record) of every record read range by range."""
    buf = np.empty(buffer_bytes, np.uint8)
    found = []
    for start, end in zip(cuts, cuts[1:]):
        for batch in RecordReader(sep, buf, max_records).batches(InputFile(0, path, size), start, end):
            for s, e in zip(batch.starts, batch.ends):
                found.append((batch.offset + int(s), batch.data[s:e].tobytes()))
    return found


def reference_records(data, sep=b"\n"):
    out, pos = [], 0
    while pos < len(data):
        end = data.find(sep, pos)
        end = len(data) if end < 0 else end + 1
        record = data[pos:end]
        out.append((pos, record if record.endswith(sep) else record + sep))
        pos = end
    return out


@pytest.mark.parametrize("trial", range(40))
def test_byte_ranges_own_every_record_exactly_once(tmp_path, trial):
    rng = np.random.default_rng(trial)
    lengths = rng.integers(0, 60, rng.integers(1, 300))
    data = b"".join(b"r" * int(n) + b"\n" for n in lengths)
    if trial % 3 == 0:
        data = data[:-1]  # no final separator
    path = tmp_path / "f"
    path.write_bytes(data)
    cuts = sorted({0, len(data), *rng.integers(0, len(data) + 1, rng.integers(0, 12)).tolist()})
    got = records_from_ranges(str(path), len(data), cuts, buffer_bytes=int(lengths.max()) + 2 + trial,
                              max_records=int(rng.integers(1, 50)))
    assert got == reference_records(data)


def test_nul_separator(tmp_path):
    data = b"a\nb\x00c\x00\x00d"
    (tmp_path / "f").write_bytes(data)
    got = records_from_ranges(str(tmp_path / "f"), len(data), [0, 3, len(data)], 16, sep=0)
    assert got == reference_records(data, b"\x00")


def test_record_longer_than_the_buffer_is_reported(tmp_path):
    (tmp_path / "f").write_bytes(b"ok\n" + b"z" * 100 + b"\n")
    with pytest.raises(RecordTooLarge, match=r"byte offset 3 of '.*f' is 101 bytes long"):
        records_from_ranges(str(tmp_path / "f"), 104, [0, 104], 50)


def test_changed_input_is_detected(tmp_path):
    (tmp_path / "f").write_bytes(b"a\nb\n")
    with pytest.raises(Exception, match="changed size since the run was planned"):
        records_from_ranges(str(tmp_path / "f"), 3, [0, 3], 16)


def test_keys_depend_on_seed_file_and_offset():
    positions = np.arange(1000)
    a = keylib.record_keys(1, 0, positions)
    assert len(set(a.tolist())) == 1000
    assert not np.array_equal(a, keylib.record_keys(2, 0, positions))
    assert not np.array_equal(a, keylib.record_keys(1, 1, positions))
    assert np.array_equal(a[500:], keylib.record_keys(1, 0, positions[500:]))


def test_key_ranges_are_contiguous_and_nest():
    keys = np.sort(keylib.record_keys(7, 0, np.arange(100_000)))
    for k in (1, 3, 17, 1000):
        ranges = keylib.range_of(keys, k).astype(np.int64)
        assert np.all(np.diff(ranges) >= 0) and ranges.max() < k
        passes = keylib.sub_range_of(keys[ranges == 0], k, 5)
        assert np.all(np.diff(passes.astype(np.int64)) >= 0) and passes.max() < 5
        for parts in (1, 2, 7, 64):
            finer = keylib.range_of(keys, k * parts).astype(np.int64)
            assert np.array_equal(finer // parts, ranges), (k, parts)
            assert np.array_equal(finer % parts, keylib.sub_range_of(keys, k, parts).astype(np.int64)), (k, parts)


def test_checksum_continues_over_any_slicing_and_sees_order():
    data = np.random.default_rng(1).bytes(10_007)
    cuts = [0, 1, 9, 16, 5000, 5003, 10_007]
    running = 0
    for a, b in zip(cuts, cuts[1:]):
        running = checksum(data[a:b], running)
    assert running == checksum(data)
    flipped = bytearray(data)
    flipped[777] ^= 0x10
    assert checksum(bytes(flipped)) != checksum(data)
    # the same bytes in another order: a sum of 64-bit words cannot tell these apart
    assert checksum(b"recordA\nrecordB\n") != checksum(b"recordB\nrecordA\n")


def test_small_files_share_chunks_and_large_ones_are_cut():
    files = [InputFile(0, "a", 10), InputFile(1, "b", 0), InputFile(2, "c", 25), InputFile(3, "d", 3)]
    chunks = cut_chunks(files, 12)
    covered = [(s.file_index, s.start, s.end) for chunk in chunks for s in chunk]
    assert covered == [(0, 0, 10), (2, 0, 2), (2, 2, 14), (2, 14, 25), (3, 0, 1), (3, 1, 3)]
    assert all(sum(s.end - s.start for s in chunk) <= 12 for chunk in chunks)


def test_a_compressed_file_starts_a_chunk_rather_than_overfill_one():
    """Review of issue 31: a .gz estimated at 40 "GiB" joined a chunk holding 30 of 50."""
    files = [InputFile(0, "a", 30), InputFile(1, "b.gz", 10, "gzip"), InputFile(2, "c", 30)]
    chunks = cut_chunks(files, 50)
    written = [sum((s.end - s.start) * (4 if s.file_index == 1 else 1) for s in chunk) for chunk in chunks]
    assert written == [30, 50, 20]
    assert [s.file_index for s in chunks[1]] == [1, 2]


def test_plan_follows_memory(tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as handle:
        handle.truncate(10 << 30)  # sparse: planning only stats
    small, large = (make_plan([str(big)], output_named(tmp_path / "o"), m) for m in (256, 1024))
    assert small.layout.key_ranges > large.layout.key_ranges > 1
    with pytest.raises(ConfigError, match="minimum"):
        make_plan([str(big)], output_named(tmp_path / "o"), 100)


def sparse_files(directory, count, size):
    for i in range(count):
        with open(directory / f"f{i:04}.txt", "wb") as handle:
            handle.truncate(size)  # sparse: planning only stats
    return [str(directory / "f*.txt")]


@pytest.mark.parametrize("gib, tally_job", [(1, False), (16, False), (64, True)])
def test_only_a_large_plan_has_a_tally_job(tmp_path, gib, tally_job):
    """At memory_mb=512 the benchmark's corpora up to 16 GiB make the bucket
    table in the bucket jobs (a tally job costs a start and a stage gap); at
    64 GiB the bucket jobs would read ~700 MB of index in all."""
    plan = make_plan(sparse_files(tmp_path, 1, gib << 30), output_named(tmp_path / "out"), 512)
    assert plan.tally_job == tally_job


def test_whether_a_plan_has_a_tally_job_follows_its_plan_file_not_memory_mb(tmp_path):
    """A resume under another memory_mb whose plan file is the same must build
    the same DAG (else Snakemake redoes finished work, or a finished output)."""
    inputs = sparse_files(tmp_path, 1, 35 << 30)
    by_plan_file = {}
    for memory_mb in range(576, 800, 32):
        plan = make_plan(inputs, output_named(tmp_path / "out"), memory_mb)
        by_plan_file.setdefault((plan.chunks, plan.layout), {})[memory_mb] = plan.tally_job
    assert max(map(len, by_plan_file.values())) >= 2, "no two memory_mb share a plan file"
    assert all(len(set(shape.values())) == 1 for shape in by_plan_file.values()), by_plan_file


def test_a_10_tb_plan_bounds_its_jobs_and_each_split_jobs_index(tmp_path):
    inputs = sparse_files(tmp_path, 1000, 10 << 30)
    plan = make_plan(inputs, output_named(tmp_path / "out"), 1024)
    memory = plan.memory
    spills_per_chunk = -(-plan.chunk_bytes // memory.block_bytes)
    assert spills_per_chunk * plan.layout.key_ranges * INDEX_ROW_BYTES <= memory.usable_bytes * INDEX_SHARE
    assert 1 < plan.buckets and plan.buckets + len(plan.chunks) <= MAX_JOBS
    assert len(plan.chunks) > AUTO_CHUNK_TARGET_COUNT  # the index bound, not the default, cut them
    assert plan.tally_job  # every bucket job reading every index would read ~200 TB in all
    with pytest.raises(ConfigError, match=r"set memory_mb to at least (\d+)") as refused:
        make_plan(inputs, output_named(tmp_path / "out"), 512)
    enough = int(re.search(r"at least (\d+)", str(refused.value)).group(1))
    enough_plan = make_plan(inputs, output_named(tmp_path / "out"), enough)
    assert enough_plan.buckets + len(enough_plan.chunks) <= MAX_JOBS
    with pytest.raises(ConfigError, match="chunk_mb is 100000"):
        make_plan(inputs, output_named(tmp_path / "out"), 1024, Chunking(100_000))


@pytest.mark.parametrize("tib, memory_mb", [(100, 8192), (100, 1 << 16)])
def test_no_split_job_reads_more_than_max_chunk_gb_at_any_size(tmp_path, tib, memory_mb):
    """Issue 31: at 100 TiB the default plan made 128 split jobs of 800 GiB
    (where memory is large enough for the split index to allow them)."""
    inputs = sparse_files(tmp_path, tib * 4, 256 << 30)
    plan = make_plan(inputs, output_named(tmp_path / "out"), memory_mb, Chunking("auto", 50))
    largest = max(sum(s.end - s.start for s in chunk) for chunk in plan.chunks)
    assert largest <= 50 << 30
    assert len(plan.chunks) >= (tib << 40) / (50 << 30) and plan.buckets + len(plan.chunks) <= MAX_JOBS
    unbounded = make_plan(inputs, output_named(tmp_path / "out"), memory_mb)
    assert max(sum(s.end - s.start for s in chunk) for chunk in unbounded.chunks) > 50 << 30


def test_a_chunk_above_max_chunk_gb_or_too_many_of_them_are_refused_naming_the_keys(tmp_path):
    inputs = sparse_files(tmp_path, 4, 256 << 30)
    with pytest.raises(ConfigError, match="chunk_mb is 3000, more than max_chunk_gb=2 allows"):
        make_plan(inputs, output_named(tmp_path / "out"), 1024, Chunking(3000, 2))
    assert make_plan(inputs, output_named(tmp_path / "out"), 1024, Chunking(2048, 2)).chunk_bytes == 2 << 30
    small = tmp_path / "small"
    small.mkdir()
    make_plan(sparse_files(small, 1, 1 << 30), output_named(tmp_path / "out"), 1024, Chunking(3000, 2))  # no chunk is larger
    with pytest.raises(ConfigError, match=r"set memory_mb to at least \d+ or raise max_chunk_gb"):
        make_plan(sparse_files(tmp_path, 76, 256 << 30), output_named(tmp_path / "out"), 1024, Chunking("auto", 1))
    too_many = sparse_files(tmp_path, 80, 256 << 30)  # 20 TiB in 1 GiB split jobs: 20,480 jobs
    with pytest.raises(ConfigError, match="max_chunk_gb=1 cuts .* into more than the 20,000 jobs"):
        make_plan(too_many, output_named(tmp_path / "out"), 1 << 16, Chunking("auto", 1))


def test_a_plan_whose_split_index_would_outgrow_its_share_is_refused(tmp_path):
    inputs = sparse_files(tmp_path, 40, 10 << 30)  # 400 GiB at the minimum memory: too many key ranges
    with pytest.raises(ConfigError, match=r"set memory_mb to at least (\d+)") as refused:
        make_plan(inputs, output_named(tmp_path / "out"), 160)
    enough = int(re.search(r"at least (\d+)", str(refused.value)).group(1))
    plan = make_plan(inputs, output_named(tmp_path / "out"), enough)
    spills_per_chunk = -(-plan.chunk_bytes // plan.memory.block_bytes)
    assert spills_per_chunk * plan.layout.key_ranges * INDEX_ROW_BYTES <= plan.memory.usable_bytes * INDEX_SHARE
    assert plan.buckets + len(plan.chunks) <= MAX_JOBS


@pytest.mark.parametrize("total_mib", [0, 1, 100, 300, 1024, 3000, 4096, 6144, 50_000, 10 << 20])
def test_auto_chunks_feed_parallel_jobs_and_stay_few(total_mib):
    total = total_mib << 20
    chunk = auto_chunk_bytes(total)
    count = -(-total // chunk)
    assert chunk >= 64 << 20 and count <= AUTO_CHUNK_TARGET_COUNT
    bounded = auto_chunk_bytes(total, 1 << 30)  # max_chunk_gb: 1
    assert bounded <= min(chunk, 1 << 30)
    if total >= 2 * (64 << 20):
        assert -(-total // bounded) % 2 == 0
    if total >= 2 * (64 << 20):
        assert count >= 2 and count % 2 == 0  # split jobs run side by side, two cores finish together
    if total <= AUTO_CHUNK_TARGET_COUNT << 31:
        assert chunk <= 2 << 30


@pytest.mark.parametrize("tagged", [False, True])
def test_index_rows_match_the_checksums_the_shuffle_verifies(tagged):
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 4, 50)
    byte_counts = counts * rng.integers(1, 40, 50)
    keys = rng.integers(0, 2**63, counts.sum(), dtype=np.uint64)
    tags = rng.integers(0, 2**63, counts.sum(), dtype=np.uint64) if tagged else None
    data = rng.integers(0, 256, byte_counts.sum(), dtype=np.uint8)
    tag_base = 100 + keys.nbytes if tagged else 0
    length_base = 100 + keys.nbytes * (2 if tagged else 1)
    lengths = rng.integers(0, 2**32, counts.sum(), dtype=np.uint32)
    spill = Spill(keys, lengths, data, file=7, tags=tags)
    rows = spill_rows(spill, counts, byte_counts, (100, length_base, length_base + 4 * len(keys)), tag_base)
    assert rows.shape[1] * rows.itemsize == INDEX_ROW_BYTES  # what the memory model counts
    assert list(rows[:, KEY_RANGE]) == list(np.flatnonzero(counts))
    key_start, data_start = 0, 0
    for row in rows:
        records, nbytes = int(row[RECORDS]), int(row[NBYTES])
        section_keys = keys[key_start : key_start + records]
        section_data = data[data_start : data_start + nbytes]
        assert int(row[KEY_OFFSET]) == 100 + key_start * 8
        assert int(row[LENGTH_OFFSET]) == length_base + key_start * 4
        assert int(row[DATA_OFFSET]) == length_base + 4 * len(keys) + data_start
        assert int(row[TAG_OFFSET]) == (tag_base + key_start * 8 if tagged else 0)
        section_lengths = lengths[key_start : key_start + records]
        section_tags = tags[key_start : key_start + records] if tagged else None
        tag_bytes = section_tags.tobytes() if tagged else b""
        expected = checksum(section_keys.tobytes() + tag_bytes + section_lengths.tobytes() + section_data.tobytes())
        assert int(row[CHECKSUM]) == expected == section_checksum(section_keys, section_lengths, section_data, section_tags)
        assert int(row[KEY_SUM]) == keylib.key_checksum(section_keys)
        key_start, data_start = key_start + records, data_start + nbytes


def keys_agreeing_above_low_bits(rng, n, low_bits):
    """Keys of few distinct high parts and random low bits: many agree above the low bits."""
    high = rng.integers(0, 50, n).astype(np.uint64) << np.uint64(64 - 6)
    return high | rng.integers(0, 1 << low_bits, n).astype(np.uint64)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 1000, 10_000, 65_537])
def test_order_by_key_breaks_ties_by_input_position(n):
    rng = np.random.default_rng(n)
    position_bits = max(1, (n - 1).bit_length())
    cases = {
        "many equal keys": rng.integers(0, 50, n).astype(np.uint64),
        "keys differing only in their low bits": keys_agreeing_above_low_bits(rng, n, position_bits),
        "low bits and equal keys": keys_agreeing_above_low_bits(rng, n, 2),
        "near 2**64": np.uint64(2**64 - 1) - rng.integers(0, 2 * n, n).astype(np.uint64),
        "real keys": keylib.record_keys(1, 0, np.arange(n)),
        "one key range of many": keys_of_one_key_range(n, 8192),
        "a narrow span": np.uint64(1 << 40) + rng.integers(0, 3 * n + 1, n).astype(np.uint64),
    }
    for name, keys in cases.items():
        unchanged = keys.copy()
        assert np.array_equal(keylib.order_by_key(keys), np.argsort(keys, kind="stable")), name
        assert np.array_equal(keys, unchanged), name


def test_keys_of_one_large_key_range_rarely_tie_in_their_packed_words():
    # 2,000,000 keys of one key range of 8,192, sharing their top 13 bits: with those bits
    # kept, 64 - 21 - 13 = 30 bits would be left and ~1,900 pairs tie; with
    # them shifted out, 43 bits and ~0.2 pairs expected.
    _, high_parts = keylib.sort_packed(keys_of_one_key_range(2_000_000, 8192))
    assert np.count_nonzero(high_parts[1:] == high_parts[:-1]) <= 4


@pytest.mark.parametrize("parts", [1, 3])
def test_bucket_table_sums_every_index_and_places_buckets_back_to_back(tmp_path, monkeypatch, parts):
    monkeypatch.setattr(tally, "ROWS_PER_STEP", 7)  # several blocks per index
    rng = np.random.default_rng(4)
    buckets = 5
    expected = [[0, 0, 0] for _ in range(buckets)]
    paths = []
    for chunk in range(3):
        index = np.zeros((int(rng.integers(0, 40)), len(runindex.COLUMNS)), np.uint64)
        index[:, KEY_RANGE] = np.sort(rng.integers(0, buckets * parts, len(index)))
        index[:, RECORDS] = rng.integers(1, 100, len(index))
        index[:, NBYTES] = rng.integers(1, 10_000, len(index))
        index[:, KEY_SUM] = rng.integers(0, 2**64, len(index), dtype=np.uint64)
        for row in index.tolist():
            totals = expected[row[KEY_RANGE] // parts]
            for column, field in enumerate((RECORDS, NBYTES, KEY_SUM)):
                totals[column] += row[field]
        paths.append(tmp_path / f"{chunk}.npy")
        np.save(paths[-1], index)
    table = tally.tally(paths, buckets, parts)
    offset = first = 0
    for bucket, (records, nbytes, key_sum) in enumerate(expected):
        assert table[bucket].tolist() == [records, nbytes, key_sum % 2**64, offset, first]
        offset, first = offset + nbytes, first + records


@pytest.mark.parametrize("example", sorted((REPO / "config" / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_are_valid(example):
    with open(REPO / "config" / "config.yaml") as handle:
        config = yaml.safe_load(handle)
    with open(example) as handle:
        config.update(yaml.safe_load(handle))
    check_config(config, str(REPO / "config" / "schema.yaml"))
    layout = read_layout(config["splits"], config["shards"])
    assert len(output_paths(config["output"], layout)) > 1


def test_record_counts_follow_the_documented_rounding():
    fractions = read_layout({"train": 0.98, "valid": 0.01, "test": 0.01}, 1)
    assert outputs.record_counts(fractions, 1001) == [981, 10, 10]  # ends at 980.98 -> 981, 990.99 -> 991
    counts = read_layout({"valid": 3, "test": 0.5, "train": {"size": "rest", "shards": 3}}, 1)
    assert outputs.record_counts(counts, 11) == [3, 6, 0, 1, 1]  # 5.5 rounds up
    assert outputs.record_counts(read_layout({}, 4), 10) == [2, 3, 2, 3]
    # Hostile pass, item 14: the sizes written are the sizes given, not binary floats floored.
    assert outputs.record_counts(read_layout({"valid": 0.57, "train": "rest"}, 1), 100) == [57, 43]
    assert outputs.record_counts(read_layout({"train": 0.71, "valid": 0.29}, 1), 100) == [71, 29]
    assert outputs.record_counts(read_layout({"a": 0.1, "b": 0.3, "c": 0.3, "d": 0.3}, 1), 5) == [1, 1, 2, 1]
    with pytest.raises(LayoutError, match="ask for 12 records"):
        outputs.record_counts(read_layout({"a": 12, "b": "rest"}, 1), 11)


def test_output_names_keep_the_extension_and_compression_suffix():
    layout = read_layout({"valid": 10, "train": {"size": "rest", "shards": 2}}, 1)
    assert output_paths("out/c.jsonl.zst", layout) == [
        "out/c.valid.jsonl.zst", "out/c.train.00000-of-00002.jsonl.zst", "out/c.train.00001-of-00002.jsonl.zst",
    ]
    assert output_paths("out/my.data.txt", read_layout({}, 1)) == ["out/my.data.txt"]
    assert output_paths("noext", read_layout({}, 2)) == ["noext.00000-of-00002", "noext.00001-of-00002"]


def test_range_rows_reads_exactly_the_rows_of_its_key_ranges(tmp_path):
    rng = np.random.default_rng(6)
    index = np.zeros((5000, len(runindex.COLUMNS)), np.uint64)
    index[:, KEY_RANGE] = np.sort(rng.choice([0, 3, 4, 9, 11], 5000))  # ranges 1, 2, 5-8, 10 are empty
    index[:, RECORDS] = np.arange(5000)
    np.save(tmp_path / "i.npy", index)
    for lo in range(13):
        for hi in range(lo, 14):
            got = runindex.range_rows(str(tmp_path / "i.npy"), lo, hi)
            chosen = (index[:, KEY_RANGE] >= lo) & (index[:, KEY_RANGE] < hi)
            assert np.array_equal(got, index[chosen]), (lo, hi)


def test_the_time_left_comes_from_the_speed_of_the_stage_in_progress():
    total, seen = 1000, deque([(0.0, 0, 0)], maxlen=progress.RATE_WINDOW + 1)
    for sample in [(1.0, 900, 0), (2.0, 1000, 0), (12.0, 1000, 100), (22.0, 1000, 200)]:
        progress.add_sample(seen, sample, total)
    assert progress.rate(seen) == 10  # the shuffle stage's 200 bytes in 20 s, not the split's pace
    assert progress.describe(1000, 200, total, progress.rate(seen)).endswith("about 80 s left")


def test_no_progress_sample_is_taken_from_a_run_published_while_it_was_counted(tmp_path, monkeypatch):
    """Gather publishes and Snakemake removes the scratch files between two
    looks: the count finds nothing (0 %), and must not be printed after 100 %."""
    output = tmp_path / "out.txt"
    spec = SimpleNamespace(outputs=[str(output)], destination=destinations.FILES)

    def publish_while_counting(_spec):
        output.write_bytes(b"done\n")
        return 0, 0

    monkeypatch.setattr(progress, "bytes_done", lambda _spec: (700, 300))
    assert progress.sample_unless_published(spec)[1:] == (700, 300)
    monkeypatch.setattr(progress, "bytes_done", publish_while_counting)
    assert progress.sample_unless_published(spec) is None


def test_a_key_range_taking_several_passes_is_read_with_no_slot_held(monkeypatch):
    """A bucket whose middle key range is too large for one pass: the slots
    of the key ranges around it are freed first, as the memory model assumes
    (MemoryModel.shuffle_passes counts all of shuffle_bytes as free)."""
    import shuffle_bucket

    memory = MemoryModel(160)
    sizes = [(10_000, 2 << 20), (100_000, 3 * memory.shuffle_bytes), (10_000, 2 << 20), (10_000, 2 << 20)]
    parts = []
    for records, nbytes in sizes:
        rows = np.zeros((1, len(runindex.COLUMNS)), np.uint64)
        rows[0, RECORDS], rows[0, NBYTES] = records, nbytes
        parts.append([("run", rows)])
    readers, seen = [], []
    monkeypatch.setattr(shuffle_bucket.PartReader, "read_run_sections", lambda self, run, places: None)
    original = shuffle_bucket.PartReader.__init__
    monkeypatch.setattr(shuffle_bucket.PartReader, "__init__",
                        lambda self, *args, **kwargs: (readers.append(self), original(self, *args, **kwargs))[1])
    monkeypatch.setattr(shuffle_bucket.KeyRangeInPasses, "plan", lambda self, memory: [(0, 1, 0, 0)] * 3)
    monkeypatch.setattr(shuffle_bucket.KeyRangeInPasses, "load", lambda self, planned: (
        seen.append([slot is None for slot in readers[0].slots]), ((np.empty(0, np.uint64),) * 4, None))[1])

    class Output:
        nbytes, written = 0, []
        sink = type("Sink", (), {"past_the_end": False})()

        def write_sorted(self, keys, lengths, data, published=None):
            self.written.append(len(keys))

    class Progress:
        def update(self, nbytes):
            pass

    spec = type("Spec", (), {"key_ranges": 4, "separator": 10, "records": SimpleNamespace(record_end=10), "dedup": None, "selects": False})()
    writer = shuffle_bucket.BucketWriter(Output(), memory, spec, None)
    writer.write(parts, 0, Progress())
    assert len(readers[0].slots) == 2, "the small key ranges around it must be read ahead"
    assert writer.passes > 1 and seen and all(all(free) for free in seen)
    assert Output.written[0] == 10_000 and Output.written[-2:] == [10_000, 10_000]


@pytest.mark.parametrize("script", ["tally_buckets.py", "gather.py"])
def test_the_jobs_that_read_only_indexes_do_not_import_arrow(script):
    """Arrow costs a job ~40 ms to import (snakeshuf.stages.runindex is apart for this)."""
    scripts = Path(__file__).resolve().parent.parent / "scripts"
    command = [sys.executable, "-X", "importtime", str(scripts / script), "--help"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "numpy" in imported, "no import profile: the check below would pass vacuously"
    assert "pyarrow" not in imported



def test_a_run_refuses_to_write_one_file_twice_or_inside_a_directory_it_removes():
    from snakeshuf.outputs.namespace import check_clashes

    check_clashes(RunFiles("o", ("o.a", "o.b"), ("scratch/o-1", "logs/o-1")))
    with pytest.raises(ConfigError, match="write 'o.lock' twice, as output 'o.lock' and as the lock of output 'o'"):
        check_clashes(RunFiles("o", ("o.train", "o.lock"), ()))
    with pytest.raises(ConfigError, match="write 'd/../o.a' twice, as output 'o.a' and as output 'd/../o.a'"):
        check_clashes(RunFiles("o", ("o.a", "d/../o.a"), ()))
    with pytest.raises(ConfigError, match="output 'logs/o-1/o' would lie in 'logs/o-1', a directory of the run's own"):
        check_clashes(RunFiles("logs/o-1/o", ("logs/o-1/o",), ("scratch/o-1", "logs/o-1")))


@pytest.mark.parametrize("first_line", [2 << 20, 1000])
def test_a_header_over_its_limit_is_named_as_the_header(tmp_path, first_line):
    """Hostile pass, item 15: a long header line was reported as a record at byte offset 0."""
    from snakeshuf.errors import InputError
    from snakeshuf.records.lines import HEADER_LIMIT, read_header

    path = tmp_path / "t.tsv"
    path.write_bytes(b"h" * first_line + b"\n" + b"x" * HEADER_LIMIT + b"\n" + b"body\n")
    with pytest.raises(InputError) as error:
        read_header(str(path), None, 2, ord("\n"))
    message = str(error.value)
    assert f"the header of '{path}'" in message and "config key 'header_lines'" in message
    longest = max(first_line, HEADER_LIMIT) + 1
    assert f"one of its lines alone is {longest:,} bytes" in message


# --- the output's lock (control.lock) ----------------------------------------


def test_a_lock_just_taken_is_named_once_its_holder_has_written_its_name(tmp_path):
    """Found by CI under load: a run that lost the race read the lock in the
    instant between the winner's flock and its write, and named 'another process'."""
    from snakeshuf.control.lock import OutputLock

    path = tmp_path / "out.txt.lock"
    with open(path, "w") as winner:  # another open file: flock excludes it even in this process
        fcntl.flock(winner, fcntl.LOCK_EX)
        threading.Timer(0.3, lambda: (winner.write("snakeshuf PID 7 on n2"), winner.flush())).start()
        assert OutputLock(str(path)).acquire() == "snakeshuf PID 7 on n2"


# --- a job's own lock (jobs.claim) -------------------------------------------


def test_a_second_instance_of_a_job_waits_for_the_first_then_stops_naming_it(tmp_path, monkeypatch):
    scratch = Scratch(str(tmp_path))
    monkeypatch.setenv("SNAKESHUF_CLAIM_WAIT_SECONDS", "1")
    lock = Path(scratch.job_lock("gather"))
    lock.parent.mkdir()
    with open(lock, "w") as first:  # another open file: flock excludes it even in this process
        fcntl.flock(first, fcntl.LOCK_EX)
        first.write("snakeshuf PID 7 on n2")
        first.flush()
        started = time.monotonic()
        with pytest.raises(JobClash, match=r"job gather of this run is held by snakeshuf PID 7 on n2 .* waited 1 s"):
            jobs.claim(scratch, "gather")
        assert time.monotonic() - started >= 1
        threading.Timer(0.3, first.close).start()  # the first instance ends while the second waits
        monkeypatch.setenv("SNAKESHUF_CLAIM_WAIT_SECONDS", "30")
        jobs.claim(scratch, "gather")
    assert lock.read_text() == f"snakeshuf PID {os.getpid()} on {socket.gethostname()}"
    jobs.release_claims()


@pytest.mark.parametrize("requeue, restarts, comment", [
    (0, 0, "rule_split_chunk_wildcards_0"), (0, 1, "rule_split_chunk_wildcards_0"),
    (1, 1, "rule_split_chunk_wildcards_0"), (0, 1, "(null)"),
])
def test_a_copy_of_a_job_that_slurm_requeued_stops_before_it_writes(tmp_path, monkeypatch, requeue, restarts, comment):
    """Found by a hostile pass on the three-node cluster: a job whose node died
    as SLURM launched it was requeued despite --no-requeue and ran after the
    run had reported it failed."""
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.parent.mkdir()
    scontrol.write_text(f"#!/bin/sh\necho 'JobId=$4 JobName=x Requeue={requeue} Restarts={restarts} BatchFlag=1 Comment={comment}'\n")
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{scontrol.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    scratch = Scratch(str(tmp_path / "run"))
    # A job that asked for SLURM's requeues (slurm-requeue: true) runs, as does
    # a run inside an allocation of the user's (no rule's comment).
    if restarts and not requeue and comment != "(null)":
        with pytest.raises(JobClash, match="job split_chunk-0 is a copy SLURM requeued"):
            jobs.claim(scratch, "split_chunk-0")
    else:
        jobs.claim(scratch, "split_chunk-0")
    jobs.release_claims()


def test_a_job_on_a_filesystem_without_locks_runs_and_says_so(tmp_path, monkeypatch, capsys):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(jobs.fcntl, "flock", no_locks)
    jobs.claim(Scratch(str(tmp_path)), "split_chunk-0")
    jobs.release_claims()
    assert "the scratch filesystem cannot lock files (No locks available)" in capsys.readouterr().err


def test_progress_never_passes_100_percent_when_the_records_outgrow_the_estimate():
    """A 1 MB Parquet file of one value repeated through a dictionary printed 'progress 5036% of 3.8 MiB'."""
    from snakeshuf.control.progress import describe

    line = describe(4 << 20, 400 << 20, 4 << 20, rate=1.0)
    assert "progress 100% of 4.0 MiB (split 100%, shuffle 100%)" in line


def test_a_library_error_while_writing_keeps_its_own_message(tmp_path):
    """Found by a hostile pass: an OSError without an errno raised inside
    atomic_write (a store's failed request, read while writing a run file)
    came out as '[Errno None] None: <the partial file>'."""
    from snakeshuf.stages.jobs import atomic_write

    with pytest.raises(OSError, match="^When reading from the store: AWS Error NO_SUCH_KEY$"):
        with atomic_write(str(tmp_path / "out")):
            raise OSError("When reading from the store: AWS Error NO_SUCH_KEY")
    assert not list(tmp_path.iterdir())
    with pytest.raises(OSError) as raised:
        with atomic_write(str(tmp_path / "out")):
            raise OSError(errno.EIO, "Input/output error")
    assert raised.value.filename == str(tmp_path / "out") + ".partial"


def test_an_output_staged_in_scratch_is_counted_once_on_a_resumed_run(tmp_path):
    """Found by a review: an object output is staged inside scratch, whose
    bytes already written were taken off twice, so a resumed run's
    preflight passed and gather ran out of disk."""
    from snakeshuf.control.disk import disk_needs, scratch_bytes

    scratch = tmp_path / "scratch"
    staged = scratch / "publishing" / "00000-out.txt"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"x" * 4096)
    [(_, needed)] = disk_needs(1 << 20, str(scratch), str(staged), pieces=True).values()
    assert needed == scratch_bytes(1 << 20, True) + (1 << 20) - 4096
