"""One global order, cut many ways: shards, named splits and compressed outputs
hold exactly the single-file output, in pieces."""

import gzip
import io
import json
import os
import random
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import zstandard

from conftest import corpus_file, job_reports, run_workflow
from test_uniformity import ALPHA, neighbour_origins, position_vs_origin


def decompressed(path):
    data = path.read_bytes()
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
    return data


def assert_tools_accept(paths):
    """gzip -t / zstd -t, where the tools are installed."""
    for path in paths:
        tool = {".gz": "gzip", ".zst": "zstd"}.get(path.suffix)
        if tool and shutil.which(tool):
            subprocess.run([tool, "-t", "-q", str(path)], check=True)


def outputs_of(workdir, summary_name):
    summary = json.loads((workdir / summary_name).read_text())
    return [workdir / path for path in summary["outputs"]], summary


def single_file_output(workdir, config):
    run_workflow(workdir, {**config, "output": "single.txt", "splits": {}, "shards": 1})
    return (workdir / "single.txt").read_bytes()


def record_counts(data_per_file):
    return [data.count(b"\n") for data in data_per_file]


def test_two_thousand_compressed_inputs_into_zstd_shards_and_splits(tmp_path):
    """The issue's acceptance case: 2,000 gzip inputs, a zstd one and a plain one
    (from a sample sheet) into 16 .zst train shards plus valid and test."""
    rng = random.Random(5)
    (tmp_path / "d").mkdir()
    names, origin_of = [], {}
    for i in range(2002):
        lines = [b'{"file": %d, "line": %d, "text": "%x"}\n' % (i, j, rng.getrandbits(64)) for j in range(40)]
        origin_of.update((line, len(origin_of)) for line in lines)
        name = f"d/part-{i:04d}.jsonl" + (".gz" if i < 2000 else ".zst" if i == 2000 else "")
        compress = gzip.compress if i < 2000 else zstandard.ZstdCompressor().compress if i == 2000 else bytes
        (tmp_path / name).write_bytes(compress(b"".join(lines)))
        names.append(name)
    (tmp_path / "files.tsv").write_text("path\n" + "".join(f"{n}\n" for n in names))
    config = {
        "sample_sheet": "files.tsv", "output": "out/corpus.jsonl.zst", "memory_mb": 160,
        "splits": {"valid": 0.01, "test": 0.01, "train": {"size": "rest", "shards": 16}},
    }
    run_workflow(tmp_path, config)
    paths, summary = outputs_of(tmp_path, "out/corpus.jsonl.zst.summary.json")
    assert [p.name for p in paths[:3]] == [
        "corpus.valid.jsonl.zst", "corpus.test.jsonl.zst", "corpus.train.00000-of-00016.jsonl.zst",
    ] and len(paths) == 18
    assert_tools_accept(paths)
    parts = [decompressed(p) for p in paths]
    total = len(origin_of)
    counts = record_counts(parts)
    valid_end, test_end = (total + 50) // 100, (2 * total + 50) // 100  # round(0.01 and 0.02 x total)
    assert counts[:2] == [valid_end, test_end - valid_end]
    assert max(counts[2:]) - min(counts[2:]) <= 1 and sum(counts) == total
    joined = b"".join(parts)
    assert Counter(joined.splitlines(True)) == Counter(list(origin_of))
    assert joined == single_file_output(tmp_path, config)
    origins = np.array([origin_of[line] for line in joined.splitlines(True)])
    assert position_vs_origin(origins) > ALPHA
    assert neighbour_origins(origins) > ALPHA


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """40 MB: three buckets at memory_mb=160, so files start inside buckets."""
    return corpus_file(tmp_path_factory.mktemp("outputs") / "corpus.txt", 40 << 20, seed=12)


def test_gzip_shards_cut_inside_buckets_and_join_to_the_single_output(tmp_path, corpus):
    config = {"inputs": [corpus], "output": "shards.txt.gz", "memory_mb": 160, "shards": 7}
    run_workflow(tmp_path, config, env={**os.environ, "SNAKESHUF_MIB_BYTES": "65536"})  # buckets of ~4 MB
    paths, summary = outputs_of(tmp_path, "shards.txt.gz.summary.json")
    assert summary["key_ranges"] > summary["buckets"] >= 3 and len(paths) == 7  # buckets of several key ranges
    assert paths[0].name == "shards.00000-of-00007.txt.gz"
    assert_tools_accept(paths)
    parts = [decompressed(p) for p in paths]
    counts = record_counts(parts)
    assert max(counts) - min(counts) <= 1
    assert_summary_describes(summary, paths, counts, job_reports(tmp_path))
    assert b"".join(parts) == single_file_output(tmp_path, config)
    assert not list(tmp_path.glob("scratch/**/*.piece")), "pieces left behind"


def assert_summary_describes(summary, paths, counts, reports):
    """Each output file's records and bytes, the inputs' sizes and each stage's
    jobs and largest peak memory, as the files and the job logs have them."""
    files = summary["outputs"].values()
    assert [f["records"] for f in files] == counts
    assert [f["bytes"] for f in files] == [p.stat().st_size for p in paths]
    assert summary["inputs"] == {p: os.path.getsize(Path(paths[0]).parent / p) for p in summary["inputs"]}
    for stage in ("split", "tally", "shuffle", "gather"):
        jobs = [r for r in reports if r["stage"] == stage]
        if stage == "tally" and not jobs:  # a small plan: no tally job
            assert summary["stages"][stage] is None
            continue
        assert summary["stages"][stage]["jobs"] == len(jobs), stage
        assert summary["stages"][stage]["peak_rss_mb"] == max(r["peak_rss_mb"] for r in jobs), stage


def test_every_shard_starts_with_the_header(tmp_path):
    header = b"id\tword\n"
    body = b"".join(b"%d\tw%d\n" % (i, i) for i in range(3001))
    (tmp_path / "t.tsv").write_bytes(header + body)
    config = {"inputs": ["t.tsv"], "output": "t.tsv", "header_lines": 1, "shards": 3}
    run_workflow(tmp_path / "run", {**config, "inputs": ["../t.tsv"]})
    paths = [tmp_path / "run" / f"t.{i:05d}-of-00003.tsv" for i in range(3)]
    parts = [p.read_bytes() for p in paths]
    assert all(part.startswith(header) and part.count(header) == 1 for part in parts)
    assert record_counts(parts) == [1001, 1001, 1002]  # the header line counts once each
    single = single_file_output(tmp_path / "run", {**config, "inputs": ["../t.tsv"]})
    assert b"".join(part[len(header):] for part in parts) == single[len(header):]


def test_splits_asking_for_more_records_than_there_are_publish_nothing(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"".join(b"%d\n" % i for i in range(100)))
    config = {"inputs": ["a.txt"], "output": "o.txt", "splits": {"valid": 80, "test": 80, "train": "rest"}}
    result = run_workflow(tmp_path, config, check=False)
    assert result.returncode != 0
    assert "the splits ask for 160 records (valid: 80, test: 80, train: 0) but only 100 are published" in result.stderr
    assert not list(tmp_path.glob("o.*.txt"))


def test_a_damaged_piece_is_caught_and_only_its_bucket_redone(tmp_path, corpus):
    config = {"inputs": [corpus], "output": "p.txt.zst", "memory_mb": 160, "shards": 2}
    reference = tmp_path / "reference"
    run_workflow(reference, config)
    expected = [p.read_bytes() for p in outputs_of(reference, "p.txt.zst.summary.json")[0]]
    run_workflow(tmp_path, config, "--until", "shuffle_bucket", "--notemp")
    victim = sorted(tmp_path.glob("scratch/*/pieces/*.piece"))[-1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    failed = run_workflow(tmp_path, config, check=False)
    assert failed.returncode != 0 and "1 bucket piece files are missing or do not match" in failed.stderr
    assert not list(tmp_path.glob("p.*.zst"))
    dry = run_workflow(tmp_path, config, "--dry-run")
    assert dry.stdout.count("rule shuffle_bucket") == 1
    run_workflow(tmp_path, config)
    assert [p.read_bytes() for p in outputs_of(tmp_path, "p.txt.zst.summary.json")[0]] == expected


PAIRS = 400_000


def parallel_corpus(directory, pairs, seed):
    """Two line-aligned files whose line i share the id i; English lines vary in length."""
    rng = np.random.default_rng(seed)
    words = rng.integers(1, 300, pairs)
    (directory / "c.de").write_bytes(b"".join(b"%d de\n" % i for i in range(pairs)))
    english = b"".join(b"%d en %s\n" % (i, b"w" * int(n)) for i, n in zip(range(pairs), words))
    (directory / "c.en.gz").write_bytes(gzip.compress(english))


def ids(data):
    return [int(line.split(b" ", 1)[0]) for line in data.splitlines()]


def test_a_parallel_corpus_stays_aligned_through_buckets_passes_and_shards(tmp_path):
    """400,000 pairs at memory_mb=160: several buckets, each in several passes
    (the English side compresses far better than the plan assumes)."""
    parallel_corpus(tmp_path, PAIRS, seed=2)
    config = {"paired": [["c.de", "c.en.gz"]], "output": "out/mt.txt.zst", "memory_mb": 160, "shards": 3}
    run_workflow(tmp_path, config)
    paths, summary = outputs_of(tmp_path, "out/mt.txt.zst.summary.json")
    assert [p.name for p in paths[:2]] == ["mt.00000-of-00003.de.txt.zst", "mt.00000-of-00003.en.txt.zst"]
    assert summary["buckets"] > 1 and len(paths) == 6
    german = [decompressed(p) for p in paths[0::2]]
    english = [decompressed(p) for p in paths[1::2]]
    for de, en in zip(german, english):
        assert ids(de) == ids(en)  # line for line
    order = ids(b"".join(german))
    assert sorted(order) == list(range(PAIRS)) and order != sorted(order)
    passes = [r.get("passes", 1) for r in job_reports(tmp_path) if r["stage"] == "shuffle"]
    assert max(passes) > 1, "the test must exercise several passes"


def test_misaligned_pairs_name_both_files_and_publish_nothing(tmp_path):
    parallel_corpus(tmp_path, 1000, seed=3)
    (tmp_path / "short.de").write_bytes(b"".join(b"%d de\n" % i for i in range(999)))
    (tmp_path / "long.en.gz").write_bytes((tmp_path / "c.en.gz").read_bytes())
    config = {"paired": [["c.de", "c.en.gz"], ["short.de", "long.en.gz"]], "output": "mt.txt"}
    result = run_workflow(tmp_path, config, "--retries", "0", check=False)
    assert result.returncode != 0
    assert "paired inputs 'short.de' (999 lines) and 'long.en.gz' (1,000 lines) are not aligned" in result.stderr
    assert not list(tmp_path.glob("mt.*"))


@pytest.mark.parametrize("output", ["out.txt.gz", "out.jsonl.zst"])
def test_compressed_bytes_do_not_depend_on_memory(tmp_path, output):
    """Hostile pass, item 6: members followed the buckets, so the .gz and .zst
    bytes (and the summary's byte counts) changed with --memory. They are cut
    every MEMBER_RECORDS records of the one order now."""
    (tmp_path / "in.txt").write_bytes(b"".join(b"%d\n" % i for i in range(1, 1_500_001)))
    stored = []
    for memory_mb, unit in ((160, 65536), (1024, 1 << 20)):
        workdir = tmp_path / f"m{memory_mb}"
        run_workflow(workdir, {"inputs": ["../in.txt"], "output": output, "memory_mb": memory_mb},
                     env={**os.environ, "SNAKESHUF_MIB_BYTES": str(unit)})
        summary = json.loads((workdir / f"{output}.summary.json").read_text())
        stored.append(((workdir / output).read_bytes(), summary["outputs"][output]["bytes"], summary["buckets"]))
    (small, small_bytes, small_buckets), (large, large_bytes, large_buckets) = stored
    assert small_buckets > large_buckets  # the buckets differ; the bytes must not
    assert small == large and small_bytes == large_bytes


@pytest.mark.parametrize("output", ["head.txt", "head.txt.zst"])
def test_a_head_runs_split_jobs_leave_out_what_it_cannot_publish(tmp_path, output):
    """-n N (issue 28): a record is among the first N only if it is among its
    chunk's first N, so the split jobs pass on little more than N records per
    chunk; the output is still the reference's, at a memory unit that reads
    each chunk in many batches."""
    corpus_file(tmp_path / "in.txt", 4 << 20, seed=21)
    config = {"inputs": ["in.txt"], "output": output, "memory_mb": 160, "head": 200, "chunk_mb": 96, "seed": 3}
    run_workflow(tmp_path, config, env={**os.environ, "SNAKESHUF_MIB_BYTES": "16384"})
    split = [r for r in job_reports(tmp_path) if r["stage"] == "split"]
    assert len(split) >= 2 and all(r["spills"] > 8 for r in split), "not read in many batches"
    assert sum(r["left_out_bytes"] for r in split) > 0.8 * (4 << 20)


def test_a_new_layout_removes_the_files_of_the_one_it_replaces_and_nothing_else(tmp_path):
    """Found by a hostile pass: after a run into 3 shards, a run into 2 left
    the three -of-00003 files beside the new ones (a reader's glob read every
    record twice). The files the old summary lists, still as it published them,
    go; one changed since, an input, and a stranger's file stay."""
    corpus = corpus_file(tmp_path / "c.txt", 1 << 20, seed=3)
    config = {"inputs": [str(corpus)], "output": "o.txt"}
    run_workflow(tmp_path, {**config, "shards": 3})
    old = [tmp_path / f"o.{k:05d}-of-00003.txt" for k in range(3)]
    with open(old[1], "ab") as handle:
        handle.write(b"edited by hand\n")
    (tmp_path / "o.stranger.txt").write_bytes(b"not ours\n")
    run_workflow(tmp_path, {**config, "shards": 2})
    assert not old[0].exists() and not old[2].exists()
    assert old[1].read_bytes().endswith(b"edited by hand\n") and (tmp_path / "o.stranger.txt").exists()
    two = [tmp_path / f"o.{k:05d}-of-00002.txt" for k in range(2)]
    run_workflow(tmp_path, {**config, "inputs": [str(corpus), str(two[0])]})  # a listed file that is an input
    assert two[0].exists() and not two[1].exists() and (tmp_path / "o.txt").exists()
    assert json.loads((tmp_path / "o.txt.summary.json").read_text())["removed"] == [str(two[1])]


def test_the_old_sets_files_are_found_from_any_directory_and_after_a_gather_done_twice(tmp_path, monkeypatch):
    """Found in review: a summary lists its files as configured (relative), so
    a run from another directory looked for them there; and a gather done
    again (its first killed before publishing) forgot what the first would
    have removed, the old summary being its own by then."""
    from snakeshuf.outputs import destinations, publishing

    (tmp_path / "out").mkdir()
    old = tmp_path / "out" / "o.00000-of-00002.txt"
    old.write_bytes(b"x\n")
    token = destinations.FILES.sign(str(old), str(tmp_path / "out" / "o.txt"))
    info = os.stat(old)
    entry = {"records": 1, "bytes": info.st_size, "inode": info.st_ino, **({"token": token} if token else {})}
    spec = SimpleNamespace(outputs=[str(tmp_path / "out" / "o.txt")], files=[])
    record = {"outputs": {"out/o.00000-of-00002.txt": entry}, "made_by": {"outputs": [str(old)]}}
    monkeypatch.chdir(tmp_path / "out")  # where 'out/o...' names nothing
    assert publishing.superseded(spec, record) == {str(old): entry}
    first_gathers = {"outputs": {str(tmp_path / "out" / "o.txt"): {}}, "superseded": {str(old): entry}}
    assert publishing.superseded(spec, first_gathers) == {str(old): entry}
    publishing.remove_superseded({"superseded": publishing.superseded(spec, first_gathers)})
    assert not old.exists()
