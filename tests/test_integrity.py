"""Corrupted or truncated intermediates are caught, named, and never published."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import corpus_file, run_workflow
from snakeshuf.stages.runfile import DATA_OFFSET, KEY_OFFSET, LENGTH_OFFSET, RECORDS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return corpus_file(tmp_path_factory.mktemp("integrity") / "corpus.txt", 40 << 20, seed=8)


def config_for(corpus):
    return {"inputs": [corpus], "output": "out.txt", "memory_mb": 160, "chunk_mb": 16, "seed": 2}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus):
    d = tmp_path_factory.mktemp("reference")
    run_workflow(d, config_for(corpus))
    return (d / "out.txt").read_bytes()


@pytest.fixture(scope="module")
def stages(tmp_path_factory, corpus):
    """One run stopped after its split jobs, then after its bucket jobs, its
    intermediates kept, and its directory saved at both points: (where it
    ran, the saved copies). A test damages a copy put back where the run was
    (its scratch directory is named by that place)."""
    place = tmp_path_factory.mktemp("damaged") / "run"
    saved = tmp_path_factory.mktemp("saved")
    run_workflow(place, config_for(corpus), "--until", "split_chunk", "--notemp")
    shutil.copytree(place, saved / "split_chunk", symlinks=True)  # times kept, Snakemake's records too
    run_workflow(place, config_for(corpus), "--until", "shuffle_bucket", "--notemp")
    shutil.move(place, saved / "shuffle_bucket")
    return place, saved


def restored(stages, stage):
    place, saved = stages
    shutil.copytree(saved / stage, place, symlinks=True)
    yield place
    shutil.rmtree(place)


@pytest.fixture
def after_split(stages):
    """A fresh copy of the run stopped after its split jobs, where it ran."""
    yield from restored(stages, "split_chunk")


@pytest.fixture
def after_buckets(stages):
    """A fresh copy of the run stopped after its bucket jobs, where it ran."""
    yield from restored(stages, "shuffle_bucket")


def swap_words(path, first, second):
    """Swap the 8-byte words at two offsets: a misdirected or reordered block
    write in miniature (the same bytes, in other places)."""
    with open(path, "r+b") as handle:
        handle.seek(first)
        a = handle.read(8)
        handle.seek(second)
        b = handle.read(8)
        assert a != b, "the test must swap different words"
        handle.seek(first)
        handle.write(b)
        handle.seek(second)
        handle.write(a)


def flip_byte(path, offset):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x20]))


def run_file(workdir):
    return sorted(Path(workdir).glob("scratch/*/runs/1.run"))[0]


@pytest.mark.parametrize("part", [KEY_OFFSET, LENGTH_OFFSET, DATA_OFFSET], ids=["key", "length", "record"])
def test_flipped_byte_in_a_run_file_is_named(after_split, corpus, part):
    config, tmp_path = config_for(corpus), after_split
    target = run_file(tmp_path)
    section = np.load(target.with_suffix(".index.npy"))[-1]
    flip_byte(target, int(section[part]) + 2)
    result = run_workflow(tmp_path, config, check=False)
    assert result.returncode != 0
    assert f"run file '{target.relative_to(tmp_path)}' is corrupt" in result.stderr
    assert not (tmp_path / "out.txt").exists()


def test_swapped_keys_in_a_run_file_are_caught(after_split, corpus):
    """Two records trading keys keep every count, length and key sum, and
    would silently change the order."""
    config, tmp_path = config_for(corpus), after_split
    target = run_file(tmp_path)
    index = np.load(target.with_suffix(".index.npy"))
    section = index[np.argmax(index[:, RECORDS])]
    swap_words(target, int(section[KEY_OFFSET]), int(section[KEY_OFFSET]) + 8)
    result = run_workflow(tmp_path, config, check=False)
    assert result.returncode != 0
    assert f"run file '{target.relative_to(tmp_path)}' is corrupt" in result.stderr
    assert not (tmp_path / "out.txt").exists()


def test_truncated_run_file_is_named(after_split, corpus):
    config, tmp_path = config_for(corpus), after_split
    target = run_file(tmp_path)
    with open(target, "r+b") as handle:
        handle.truncate(target.stat().st_size - 1000)
    result = run_workflow(tmp_path, config, check=False)
    assert result.returncode != 0
    assert f"run file '{target.relative_to(tmp_path)}' is truncated" in result.stderr
    assert not (tmp_path / "out.txt").exists()


def flip_in_region(path, stats):
    flip_byte(path, stats["region"]["offset"] + stats["bytes"] // 3)


def swap_in_region(path, stats):
    middle = stats["region"]["offset"] + stats["bytes"] // 2
    aligned = middle - middle % 8
    swap_words(path, aligned, aligned + 64)


@pytest.mark.parametrize("verify, damage", [("changed", flip_in_region), ("always", swap_in_region)],
                         ids=["changed, flipped byte", "always, swapped words"])
def test_damage_to_a_bucket_before_gather_is_caught_and_redone(after_buckets, corpus, reference, verify, damage):
    config, tmp_path = {**config_for(corpus), "verify_output": verify}, after_buckets
    stats = [json.loads(p.read_text()) for p in tmp_path.glob("scratch/*/buckets/*.json")]
    victim = max(stats, key=lambda s: s["bytes"])
    damage(tmp_path / "out.txt.partial", victim)
    result = run_workflow(tmp_path, config, check=False)
    assert result.returncode != 0
    assert "1 bucket region(s) of 'out.txt.partial' are missing or do not match" in result.stderr
    assert not (tmp_path / "out.txt").exists()
    dry = run_workflow(tmp_path, config, "--dry-run")
    assert f"bucket={victim['bucket']}" in dry.stdout and dry.stdout.count("rule shuffle_bucket") == 1
    run_workflow(tmp_path, config)
    assert (tmp_path / "out.txt").read_bytes() == reference
