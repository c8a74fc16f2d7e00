"""The command where it overlaps GNU shuf (issue 28): standard input and
output, pipes as inputs, -z. shuf is the reference for what comes out (the
same records, each as often), from empty input to many records."""

import os
import pty
import subprocess

import pytest

from conftest import run_workflow, snakemake_command, snakeshuf

CORPORA = {
    "empty": b"",
    "one record": b"only\n",
    "one record, no newline": b"only",
    "many records": b"".join(b"line %d\n" % (i % 700) for i in range(5000)),
}


def piped(command, data, env, cwd):
    return subprocess.run(command, input=data, capture_output=True, env=env, cwd=cwd)


def records(data, separator=b"\n"):
    return sorted(data.split(separator))


@pytest.mark.parametrize("name", CORPORA)
def test_stdin_to_stdout_gives_the_records_shuf_gives(name, installed, tmp_path):
    data = CORPORA[name]
    ours = piped(["snakeshuf", "-", "-o", "-", "--memory", "160M"], data, installed, tmp_path)
    assert ours.returncode == 0, ours.stderr.decode()[-3000:]
    theirs = piped(["shuf"], data, installed, tmp_path)
    assert records(ours.stdout) == records(theirs.stdout)
    assert os.listdir(tmp_path) == [], "the command left files in the current directory"


def test_zero_terminated_records_as_shuf_z(installed, tmp_path):
    data = b"".join(b"rec\n%d\0" % (i % 9) for i in range(300))
    ours = piped(["snakeshuf", "-z", "-", "-o", "-", "--memory", "160M"], data, installed, tmp_path)
    theirs = piped(["shuf", "-z"], data, installed, tmp_path)
    assert ours.returncode == 0 and records(ours.stdout, b"\0") == records(theirs.stdout, b"\0")


def test_stdin_gives_the_bytes_of_the_same_records_in_a_file(installed, tmp_path):
    """The order is a function of the records and the seed, not of where they came from."""
    data = CORPORA["many records"]
    (tmp_path / "in.txt").write_bytes(data)
    from_file = snakeshuf(tmp_path, installed, "in.txt", "-o", "file.txt", "--seed", "5")
    assert from_file.returncode == 0, from_file.stderr[-3000:]
    ours = piped(["snakeshuf", "-", "-o", "-", "--seed", "5"], data, installed, tmp_path)
    assert ours.stdout == (tmp_path / "file.txt").read_bytes()
    (tmp_path / "sc").mkdir()  # hostile pass: a relative --scratch lost the output of a run to stdout
    in_scratch = piped(["snakeshuf", "-", "-o", "-", "--seed", "5", "--scratch", "sc"], data, installed, tmp_path)
    assert in_scratch.stdout == ours.stdout, in_scratch.stderr.decode()[-2000:]


def test_a_pipe_into_head_ends_quietly_and_leaves_nothing(installed, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    script = f"seq 1 300000 | snakeshuf - -o - --memory 160M --scratch {scratch} | head -n 5"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True,
                            env=installed, cwd=tmp_path)
    assert len(result.stdout.splitlines()) == 5
    assert result.returncode == 141, "not ended as shuf is, by the closed pipe"
    assert "Traceback" not in result.stderr and "error" not in result.stderr, result.stderr[-3000:]
    assert os.listdir(scratch) == [], "the run's state was left behind"


def test_process_substitution_and_dev_null_are_read_like_stdin(installed, tmp_path):
    """A pipe given by name (<(gzip -c x), a FIFO's path, /dev/null) is read
    to its end first; such a run always runs and its summary names the pipe."""
    data = CORPORA["many records"]
    (tmp_path / "a.txt").write_bytes(data)
    script = "snakeshuf <(gzip -c a.txt) /dev/null -o out.txt --seed 3 --memory 160M"
    for _ in range(2):
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=installed, cwd=tmp_path)
        assert result.returncode == 0 and "Nothing to be done" not in result.stderr, result.stderr[-3000:]
    direct = snakeshuf(tmp_path, installed, "a.txt", "-o", "direct.txt", "--seed", "3")
    assert direct.returncode == 0
    assert (tmp_path / "out.txt").read_bytes() == (tmp_path / "direct.txt").read_bytes()
    assert '"null": 0' in (tmp_path / "out.txt.summary.json").read_text()


def test_a_terminal_on_stdin_is_refused(installed, tmp_path):
    controller, terminal = pty.openpty()
    result = subprocess.run(["snakeshuf", "-", "-o", "out.txt"], stdin=terminal, capture_output=True,
                            text=True, env=installed, cwd=tmp_path)
    os.close(controller)
    os.close(terminal)
    assert result.returncode == 2 and "input '-' is standard input, which is a terminal" in result.stderr
    assert "Traceback" not in result.stderr and os.listdir(tmp_path) == []


def test_stdout_closed_or_full_fails_loudly(installed, tmp_path):
    (tmp_path / "in.txt").write_bytes(CORPORA["many records"])
    closed = subprocess.run(["bash", "-c", "snakeshuf in.txt -o - >&-"], capture_output=True, text=True,
                            env=installed, cwd=tmp_path)
    assert closed.returncode == 2 and "standard output is closed" in closed.stderr
    with open("/dev/full", "wb") as full:
        result = subprocess.run(["snakeshuf", "in.txt", "-o", "-"], stdout=full, stderr=subprocess.PIPE,
                                text=True, env=installed, cwd=tmp_path)
    assert result.returncode == 1 and "cannot write the output to standard output (No space left" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["in.txt"]


def test_snakemake_reads_stdin_for_the_input_dash(tmp_path):
    data = CORPORA["many records"]
    (tmp_path / "in.txt").write_bytes(data)
    config = {"inputs": ["in.txt"], "output": "file.txt", "memory_mb": 160}
    run_workflow(tmp_path, config)
    command = snakemake_command(tmp_path / "piped", {**config, "inputs": ["-"], "output": "out.txt"})
    result = subprocess.run(command, input=data, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert (tmp_path / "piped" / "out.txt").read_bytes() == (tmp_path / "file.txt").read_bytes()


@pytest.mark.parametrize("name, count", [
    ("empty", 0), ("empty", 5), ("one record", 0), ("one record, no newline", 1), ("one record", 5),
    ("many records", 0), ("many records", 3), ("many records", 10**6),
])
def test_head_count_outputs_what_shuf_n_outputs(name, count, installed, tmp_path):
    """-n N: the first N records of the order; as many as shuf -n N gives
    (all when there are fewer), each an input record, none twice more than it is there."""
    data = CORPORA[name]
    ours = piped(["snakeshuf", "-n", str(count), "-", "-o", "-"], data, installed, tmp_path)
    assert ours.returncode == 0, ours.stderr.decode()[-3000:]
    theirs = piped(["shuf", "-n", str(count)], data, installed, tmp_path)
    assert len(ours.stdout.splitlines()) == len(theirs.stdout.splitlines())
    chosen, available = records(ours.stdout), records(data if data.endswith(b"\n") or not data else data + b"\n")
    assert all(chosen.count(r) <= available.count(r) for r in set(chosen))


def test_head_is_the_start_of_the_whole_order(installed, tmp_path):
    data = CORPORA["many records"]
    whole = piped(["snakeshuf", "-", "-o", "-", "--seed", "8"], data, installed, tmp_path).stdout
    run = piped(["snakeshuf", "--head-count", "40", "-", "-o", "-", "--seed", "8"], data, installed, tmp_path)
    head = run.stdout
    # Its split jobs pass on only the records that may be first: the line once read "(from 5,000 read: weights, dedup)".
    assert b"snakeshuf: 40 of 5,000 records -> " in run.stderr, run.stderr.decode()[-2000:]
    fraction = piped(["snakeshuf", "--fraction", "0.01", "-", "-o", "-", "--seed", "8"], data, installed, tmp_path).stdout
    assert head == b"".join(whole.splitlines(keepends=True)[:40])
    assert fraction == b"".join(whole.splitlines(keepends=True)[:50])


@pytest.mark.parametrize("args, message", [
    (["-n", "-1"], "is not a whole number of 0 or more"),
    (["-n", "5", "--fraction", "0.5"], "give one"),
    (["--fraction", "1.5"], "is not a number from 0 to 1"),
])
def test_head_and_fraction_are_checked(args, message, installed, tmp_path):
    result = snakeshuf(tmp_path, installed, *args, "in.txt", "-o", "out.txt")
    assert result.returncode == 2 and message in result.stderr
