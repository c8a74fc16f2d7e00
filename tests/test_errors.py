"""Bad input and bad configuration: a specific message, a non-zero exit, no job
started and no output written."""

import os
import socket
import threading
import subprocess

import pytest

from conftest import run_workflow, snakemake_command
from snakeshuf.stages.scratch import run_directory


@pytest.fixture
def good_input(workdir):
    (workdir / "data").mkdir()
    (workdir / "data" / "a.txt").write_bytes(b"one\ntwo\nthree\n")
    for name, text in MORE_FILES.items():
        (workdir / "data" / name).write_text(text)
    return "data/a.txt"


MORE_FILES = {
    "other-header.txt": "uno\ntwo\n",
    "no-path.tsv": "file\tsource\ndata/a.txt\tweb\n",
    "empty-cell.tsv": "path\tsource\ndata/a.txt\tweb\n\tbooks\n",
    "lists-missing.csv": "source,path\nweb,data/a.txt\nweb,data/b.txt\n",
    "lists-a-url.tsv": "path\ndata/a.txt\ngs://bucket/b.txt\n",
    "good.tsv": "path\ndata/a.txt\n",
}


def assert_refused(workdir, config, *expected):
    result = run_workflow(workdir, config, check=False)
    assert result.returncode != 0
    message = result.stderr
    for text in expected:
        assert text in message, f"{text!r} not in:\n{message}"
    assert "snakeshuf: error:" in message
    assert not (workdir / "logs").exists(), "a job ran"
    assert not (workdir / "out.txt").exists()
    assert not list(workdir.glob("*:")), "a URL was taken for a local path"
    assert (workdir / "data" / "a.txt").read_bytes() == b"one\ntwo\nthree\n"
    assert {name: (workdir / "data" / name).read_text() for name in MORE_FILES} == MORE_FILES
    return message


CASES = {
    "missing input": (
        {"inputs": ["data/a.txt", "data/missing.txt"]},
        ["input 'data/missing.txt' does not exist"],
    ),
    "glob matching nothing": ({"inputs": ["data/*.jsonl"]}, ["'data/*.jsonl'", "matches no file"]),
    "directory as input": ({"inputs": ["data"]}, ["input 'data' is a directory"]),
    "output equal to an input": (
        {"inputs": ["data/a.txt"], "output": "data/../data/a.txt"},
        ["input 'data/a.txt' is output 'data/../data/a.txt' of this run; a run never reads what it writes"],
    ),
    "output equal to the sample sheet, even with overwrite": (
        {"sample_sheet": "data/good.tsv", "output": "data/good.tsv", "overwrite": True},
        ["sample sheet 'data/good.tsv' is output 'data/good.tsv' of this run; a run never reads what it writes"],
    ),
    "output that is a URL of another store": (
        {"inputs": ["data/a.txt"], "output": "gs://bucket/out.txt"},
        ["config key 'output': 'gs://bucket/out.txt' is a URL", "outputs are files or s3:// objects",
         "snakeshuf IN -o - | gcloud storage cp - gs://bucket/out.txt"],
    ),
    "input that is a URL": (
        {"inputs": ["data/a.txt", "gs://bucket/b.txt"]},
        ["config key 'inputs': 'gs://bucket/b.txt' is a URL", "| snakeshuf - -o out.txt"],
    ),
    "sample sheet listing a URL": (
        {"sample_sheet": "data/lists-a-url.tsv"},
        ["config key 'sample_sheet': 'gs://bucket/b.txt' is a URL", "| snakeshuf - -o out.txt"],
    ),
    "unknown key": ({"inputs": ["data/a.txt"], "sede": 3}, ["unknown config key(s) 'sede'"]),
    "wrong type": ({"inputs": ["data/a.txt"], "seed": "abc"}, ["config key 'seed'", "'abc'", "integer"]),
    "memory below minimum": ({"inputs": ["data/a.txt"], "memory_mb": 64}, ["memory_mb is 64", "minimum of 160"]),
    "bad chunk size": ({"inputs": ["data/a.txt"], "chunk_mb": "big"}, ["config key 'chunk_mb'", "'auto'"]),
    "no inputs": ({"inputs": []}, ["config key 'inputs'"]),
    "sample sheet missing": (
        {"sample_sheet": "data/none.tsv"},
        ["sample sheet 'data/none.tsv' (config key 'sample_sheet') does not exist"],
    ),
    "sample sheet without a path column": (
        {"sample_sheet": "data/no-path.tsv"},
        ["sample sheet 'data/no-path.tsv'", "has no column 'path'", "'file', 'source'"],
    ),
    "sample sheet with an empty path": (
        {"sample_sheet": "data/empty-cell.tsv"},
        ["sample sheet 'data/empty-cell.tsv' (config key 'sample_sheet'), line 3: '' should be non-empty"],
    ),
    "sample sheet listing a missing file": (
        {"sample_sheet": "data/lists-missing.csv"},
        ["input 'data/b.txt' does not exist (listed in sample sheet 'data/lists-missing.csv')"],
    ),
    "headers differ": (
        {"inputs": ["data/a.txt", "data/other-header.txt"], "header_lines": 1},
        ["inputs 'data/a.txt' and 'data/other-header.txt' start with different headers", "b'one\\n' vs b'uno\\n'"],
    ),
    "input shorter than its header": (
        {"inputs": ["data/a.txt"], "header_lines": 5},
        ["input 'data/a.txt' has 3 record(s), fewer than header_lines=5"],
    ),
    "shards and splits together": (
        {"inputs": ["data/a.txt"], "shards": 4, "splits": {"valid": 10, "train": "rest"}},
        ["config keys 'shards' and 'splits' are both set"],
    ),
    "two rest splits": (
        {"inputs": ["data/a.txt"], "splits": {"a": "rest", "b": "rest"}},
        ["only one split may be 'rest' (a, b are)"],
    ),
    "fractions not adding up to one": (
        {"inputs": ["data/a.txt"], "splits": {"train": 0.9, "valid": 0.05}},
        ["without a 'rest' split", "they add up to 0.95"],
    ),
    "a record count without a rest split": (
        {"inputs": ["data/a.txt"], "splits": {"a": 5, "b": 0.999999999999}},
        ["split 'a' is a record count, so one split must be 'rest'"],
    ),
    "fractions just under one": (
        {"inputs": ["data/a.txt"], "splits": {"a": 0.5, "b": 0.499999999999}},
        ["they add up to 0.999999999999"],
    ),
    "fraction above one": (
        {"inputs": ["data/a.txt"], "splits": {"train": 1.5, "valid": "rest"}},
        ["split 'train': the fraction 1.5 is not in (0, 1]"],
    ),
    "split named like the output's lock": (
        {"inputs": ["data/a.txt"], "output": "shuffled", "splits": {"lock": 0.5, "train": "rest"}},
        ["the run would write 'shuffled.lock' twice, as output 'shuffled.lock' and as the lock of output 'shuffled'"],
    ),
    "paired column named like the output's lock": (
        {"paired": [["data/a.lock", "data/a.txt"]], "output": "shuffled"},
        ["the run would write 'shuffled.lock' twice, as output 'shuffled.lock' and as the lock of output 'shuffled'"],
    ),
    "output ending in a slash": (
        {"inputs": ["data/a.txt"], "output": "newdir/"},
        ["config key 'output': 'newdir/' ends with '/', so it names a directory"],
    ),
    "output in a compression snakeshuf does not write": (
        {"inputs": ["data/a.txt"], "output": "out.txt.xz"},
        ["config key 'output': 'out.txt.xz' ends in '.xz', which snakeshuf does not write"],
    ),
    "output with an upper-case compression suffix": (
        {"inputs": ["data/a.txt"], "output": "out.txt.GZ"},
        ["ends in '.GZ', which snakeshuf does not write"],
    ),
    "a hundred million shards": (
        {"inputs": ["data/a.txt"], "shards": 100000000},
        ["config key 'shards': 100,000,000 is more than 10,000 output files"],
    ),
    "split shards adding up to too many files": (
        {"inputs": ["data/a.txt"], "splits": {"a": {"size": 0.5, "shards": 6000}, "b": {"size": "rest", "shards": 6000}}},
        ["config key 'splits': the shards add up to 12,000 files, more than 10,000"],
    ),
    "split name with a slash": (
        {"inputs": ["data/a.txt"], "splits": {"a/b": 0.5, "c": "rest"}},
        ["config key 'splits'", "'a/b'"],
    ),
    "paired groups of different widths": (
        {"paired": [["data/a.txt", "data/other-header.txt"], ["data/no-path.tsv", "data/empty-cell.tsv", "data/lists-missing.csv"]]},
        ["config key 'paired': every group must have as many files (they have [2, 3])"],
    ),
    "paired with a header": (
        {"paired": [["data/a.txt", "data/other-header.txt"]], "header_lines": 1},
        ["config keys 'paired' and 'header_lines' cannot be combined"],
    ),
    "unknown separator": ({"inputs": ["data/a.txt"], "separator": "tab"}, ["config key 'separator'", "'tab'"]),
    "output under a regular file": (
        {"inputs": ["data/a.txt"], "output": "data/a.txt/out.txt"},
        ["config key 'output': 'data/a.txt/out.txt' cannot be created", "data/a.txt' is a file"],
    ),
    "output that is a directory": (
        {"inputs": ["data/a.txt"], "output": "data"},
        ["config key 'output': 'data' is a directory"],
    ),
    "scratch under a regular file": (
        {"inputs": ["data/a.txt"], "scratch": "data/a.txt/tmp"},
        ["config key 'scratch'", "data/a.txt' is a file"],
    ),
    "output where nothing can be created": (
        {"inputs": ["data/a.txt"], "output": "/proc/snakeshuf-none/out.txt"},
        ["config key 'output': cannot write '/proc/snakeshuf-none'", "choose an output path"],
    ),
    "same file twice": (
        {"inputs": ["data/a.txt", "data/*.txt"]},
        ["input 'data/a.txt' is the same file as 'data/a.txt'"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_configuration_is_refused_before_any_job(workdir, good_input, case):
    config, expected = CASES[case]
    config = {"output": "out.txt", **config}
    assert_refused(workdir, config, *expected)


def test_a_file_where_the_run_directory_goes_is_refused(workdir, good_input):
    config = {"inputs": ["data/a.txt"], "output": "out.txt", "scratch": "scratch"}
    (workdir / "scratch").mkdir()
    run_dir = run_directory("scratch", str(workdir / "out.txt"))
    (workdir / run_dir).write_bytes(b"not a directory")
    assert_refused(workdir, config, "config key 'scratch'", f"{run_dir}' is a file")


def test_input_that_is_not_a_regular_file(workdir, good_input):
    """A socket; a FIFO is read like standard input (tests/test_shuf_habits.py)."""
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(workdir / "data" / "socket"))
        assert_refused(workdir, {"inputs": ["data/socket"], "output": "out.txt"}, "not a regular file")


def test_a_fifo_is_read_to_its_end_like_standard_input(workdir):
    """Issue 28: as with shuf, a named pipe is an input; it was refused."""
    data = b"".join(b"record %d\n" % i for i in range(3000))
    (workdir / "file.txt").write_bytes(data)
    run_workflow(workdir / "direct", {"inputs": [str(workdir / "file.txt")], "output": "out.txt"})
    os.mkfifo(workdir / "pipe")
    writer = threading.Thread(target=(workdir / "pipe").write_bytes, args=(data,))
    writer.start()
    # Not run_workflow: its reference model would read the pipe again.
    command = snakemake_command(workdir / "piped", {"inputs": [str(workdir / "pipe")], "output": "out.txt"})
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    writer.join(timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (workdir / "piped" / "out.txt").read_bytes() == (workdir / "direct" / "out.txt").read_bytes()


def test_record_larger_than_the_budget_names_file_offset_and_size(workdir):
    (workdir / "big.txt").write_bytes(b"small\n" * 10 + b"y" * (50 << 20) + b"\nend\n")
    result = run_workflow(workdir, {"inputs": ["big.txt"], "output": "out.txt", "memory_mb": 160}, check=False)
    assert result.returncode != 0
    assert "the record at byte offset 60 of 'big.txt' is 52428801 bytes long" in result.stderr
    assert "set memory_mb to at least" in result.stderr
    assert not (workdir / "out.txt").exists()
    assert not list(workdir.rglob("*.partial"))


def test_booleans_given_on_the_command_line_are_read_as_booleans(workdir, good_input):
    config = {"inputs": [good_input], "output": "out.txt"}
    run_workflow(workdir, config, "--config", "check_disk_space=False")
    assert (workdir / "out.txt").exists()
    result = run_workflow(workdir / "again", config, "--config", "check_disk_space=maybe", check=False)
    assert result.returncode != 0 and "config key 'check_disk_space' must be true or false (it is 'maybe')" in result.stderr


def test_one_input_and_splits_given_on_the_command_line(workdir, good_input):
    """Snakemake's --config gives a string for one input and strings for the numbers in a mapping."""
    splits = {"train": {"size": "rest", "shards": 2}, "valid": 1}
    run_workflow(workdir / "file", {"inputs": [str(workdir / good_input)], "output": "out.txt", "splits": splits})
    given = ["inputs=data/a.txt", "output=out.txt", "splits={train: {size: rest, shards: 2}, valid: 1}"]
    result = subprocess.run(snakemake_command(workdir, {}, "--config", *given), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("out.valid.txt", "out.train.00000-of-00002.txt", "out.train.00001-of-00002.txt"):
        assert (workdir / name).read_bytes() == (workdir / "file" / name).read_bytes(), name
