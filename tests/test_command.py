"""The `snakeshuf` command, installed with pip from this repository: the
same bytes as the `snakemake` command, and exit statuses people can act on."""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import REPO, corpus_file, run_workflow, snakeshuf
from snakeshuf.control.cli import main, mebibytes, split_option
from test_stopping import SELECTING, STOP_SECONDS, run_and_signal, wait_until_gone


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "more").mkdir()
    corpus_file(tmp_path / "a.jsonl", 2 << 20, seed=1)
    for i in range(3):
        corpus_file(tmp_path / "more" / f"{i}.jsonl", 1 << 20, seed=2 + i)
    return tmp_path


def test_the_command_gives_the_bytes_of_the_snakemake_run(inputs, installed):
    result = snakeshuf(inputs, installed, "a.jsonl", "more/*.jsonl", "-o", "out.jsonl", "--seed", "7", "--memory", "1G")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "share/snakeshuf/config/config.yaml" in result.stderr, "not the installed workflow"
    config = {"inputs": ["a.jsonl", "more/*.jsonl"], "output": "direct.jsonl", "seed": 7, "memory_mb": 1024}
    run_workflow(inputs / "direct", {**config, "inputs": [str(inputs / "a.jsonl"), str(inputs / "more/*.jsonl")]})
    assert (inputs / "out.jsonl").read_bytes() == (inputs / "direct" / "direct.jsonl").read_bytes()


def test_splits_and_shards_from_the_command_line(inputs, installed):
    args = ["a.jsonl", "-o", "s.txt.zst", "--memory", "160M", "--split", "valid=0.1", "--split", "test=50",
            "--split", "train=rest:2", "--seed", "3"]
    result = snakeshuf(inputs, installed, *args)
    assert result.returncode == 0, result.stderr[-4000:]
    config = {"inputs": [str(inputs / "a.jsonl")], "output": "s.txt.zst", "memory_mb": 160, "seed": 3,
              "splits": {"valid": 0.1, "test": 50, "train": {"size": "rest", "shards": 2}}}
    run_workflow(inputs / "direct", config)
    names = ["s.valid.txt.zst", "s.test.txt.zst", "s.train.00000-of-00002.txt.zst", "s.train.00001-of-00002.txt.zst"]
    for name in names:
        assert (inputs / name).read_bytes() == (inputs / "direct" / name).read_bytes(), name


def test_exit_statuses(inputs, installed):
    assert snakeshuf(inputs, installed, "a.jsonl").returncode == 2  # no -o
    dry_report = snakeshuf(inputs, installed, "a.jsonl", "-o", "o.txt", "--dry-run", "--report", "r.html")
    assert dry_report.returncode == 2 and "--report needs a run" in dry_report.stderr
    missing = snakeshuf(inputs, installed, "none.jsonl", "-o", "o.txt")
    assert missing.returncode == 2 and f"input '{inputs / 'none.jsonl'}' does not exist" in missing.stderr
    failing = {**installed, "SNAKESHUF_FAIL_BUCKETS": "0"}
    failed = snakeshuf(inputs, failing, "a.jsonl", "-o", "o.txt")
    assert failed.returncode == 1 and "run the same command again" in failed.stderr
    assert snakeshuf(inputs, installed, "a.jsonl", "-o", "o.txt").returncode == 0
    assert (inputs / "o.txt").exists()


def test_sigterm_stops_the_run_and_the_same_command_resumes(inputs, installed):
    args = ["a.jsonl", "more/*.jsonl", "-o", "t.jsonl", "--memory", "160M"]
    moment = (SELECTING, 3, 0.5)
    seconds, returncode, stderr = run_and_signal(["snakeshuf", *args], signal.SIGTERM, moment, installed, inputs)
    assert seconds is not None and seconds < STOP_SECONDS and returncode == 1, stderr[-3000:]
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert not wait_until_gone(inputs), "jobs of the stopped run are still running"
    resumed = snakeshuf(inputs, installed, *args)
    assert resumed.returncode == 0 and "Nothing to be done" not in resumed.stderr, resumed.stderr[-3000:]
    direct = {"inputs": [str(inputs / "a.jsonl"), str(inputs / "more/*.jsonl")], "output": "t.jsonl", "memory_mb": 160}
    run_workflow(inputs / "direct", direct)
    assert (inputs / "t.jsonl").read_bytes() == (inputs / "direct" / "t.jsonl").read_bytes()


def test_a_report_with_the_run(inputs, installed):
    result = snakeshuf(inputs, installed, "a.jsonl", "-o", "r.jsonl", "--memory", "160M", "--report", "r.html")
    assert result.returncode == 0, result.stderr[-4000:]
    assert (inputs / "r.jsonl").exists()
    html = (inputs / "r.html").read_text()
    for name in ("summary.html", "bucket_sizes.svg", "job_memory.svg", "stage_throughput.svg"):
        assert name in html


def test_help_reads_like_a_unix_command(installed, tmp_path):
    text = snakeshuf(tmp_path, installed, "--help").stdout
    assert text.startswith("usage: snakeshuf [OPTION]... IN... -o OUT")
    for option in ("--seed", "--memory SIZE", "--split NAME=SIZE[:SHARDS]", "--paired", "--profile", "--dry-run",
                   "-n N, --head-count N", "-z, --zero-terminated"):
        assert option in text
    assert "exit status: 0 done" in text and "130/143" in text
    lines = text.splitlines()
    assert len(lines) <= 40 and max(map(len, lines)) <= 80, "--help does not fit one screen"
    examples = text.split("examples:\n")[1].split("\n\n")[0].splitlines()
    assert len(examples) == 3 and all("snakeshuf " in line for line in examples), "three examples"


def test_version(capsys):
    from snakeshuf import __version__

    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0 and capsys.readouterr().out == f"snakeshuf {__version__}\n"


@pytest.mark.parametrize("text, mib", [("2G", 2048), ("512M", 512), ("1.5G", 1536), ("160", 160), ("4GiB", 4096)])
def test_sizes_with_units(text, mib):
    assert mebibytes(text) == mib


@pytest.mark.parametrize(
    "text, split",
    [("valid=0.01", ("valid", 0.01)), ("test=1000", ("test", 1000)), ("train=rest:64", ("train", {"size": "rest", "shards": 64}))],
)
def test_split_options(text, split):
    assert split_option(text) == split


def test_the_command_from_two_directories_rebuilds_another_seeds_output(inputs, installed):
    """Issue 27: the command's state lives in the directory it starts in; the
    output's own record decides, from any directory."""
    out = inputs / "out.txt"
    said = []
    for workdir, seed in (("a", "1"), ("b", "2"), ("a", "2")):
        (inputs / workdir).mkdir(exist_ok=True)
        result = snakeshuf(inputs / workdir, installed, str(inputs / "a.jsonl"), "-o", str(out), "--seed", seed,
                           "--memory", "160M")
        assert result.returncode == 0, result.stderr[-4000:]
        said.append(result.stderr)
    assert f"'{out}' is rebuilt: it was made with seed 1; this run asks for seed 2" in said[1]
    assert f"'{out}' is up to date" in said[2]
    run_workflow(inputs / "direct", {"inputs": [str(inputs / "a.jsonl")], "output": "o.txt", "seed": 2, "memory_mb": 160})
    assert out.read_bytes() == (inputs / "direct" / "o.txt").read_bytes()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--cores", "0"], "argument --cores: '0' is not a whole number of 1 or more"),
        (["--shards", "-3"], "argument --shards: '-3' is not a whole number of 1 or more"),
        (["--memory", "0"], "argument --memory: '0' is below the minimum of 160M"),
        (["--memory", "100K"], "argument --memory: '100K' is below the minimum of 160M"),
        (["--memory", "0.1M"], "argument --memory: '0.1M' is below the minimum of 160M"),
        (["--split", "a=0.5", "--split", "a=rest"], "--split a is given twice"),
        (["--report", "nodir/r.html"], "--report nodir/r.html: the directory"),
        (["--report", "r.txt"], "--report r.txt: a report is written as .html or .zip"),  # failed after the run
        (["--weight", "in.txt=-1"], "argument --weight: 'in.txt=-1' is not SOURCE=WEIGHT"),
        (["--weight", "in.txt"], "argument --weight: 'in.txt' is not SOURCE=WEIGHT"),
        (["--weight", "in.txt=1", "--weight", "in.txt=2"], "--weight in.txt is given twice"),
        (["--dedup", "--dedup-field", "text"], "--dedup and --dedup-field both say what a duplicate is"),
        (["--dedup-missing", "keep"], "--dedup-missing says what to do with records without the --dedup-field"),
        (["--sample-sheet", "s.tsv"], "--sample-sheet lists the inputs: give no IN"),
        (["--weight", "in.txt=\u0663"], "is not SOURCE=WEIGHT"),
    ],
)
def test_usage_errors_are_refused_before_anything_runs(tmp_path, monkeypatch, capsys, args, message):
    """Hostile pass, items 9, 11 and 15: --cores 0 hung, memory below the
    minimum was reported as 'memory_mb is 1', a repeated split kept the last,
    a report into a missing directory failed after the run."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main(["in.txt", "-o", "out.txt", *args])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / ".snakemake").exists()


@pytest.mark.parametrize(
    "report, layout",
    [("in.html", []), ("o.html", []), ("o.html.summary.json", []), ("o.00001-of-00002.html", ["--shards", "2"]),
     ("o.v.html", ["--split", "v=0.5", "--split", "t=rest"])],
)
def test_a_report_named_as_a_file_the_run_reads_or_writes_is_refused(tmp_path, monkeypatch, capsys, report, layout):
    """Fresh hostile pass: --report in.html overwrote the input in.html, and
    --report o.html the output, with exit 0; a later one: a shard or split."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.html").write_text("a\nb\n")
    with pytest.raises(SystemExit) as stopped:
        main(["in.html", "-o", "o.html", "--report", report, *layout])
    assert stopped.value.code == 2 and (tmp_path / "in.html").read_text() == "a\nb\n"
    assert report.endswith(".json") or "the run reads or writes that file" in capsys.readouterr().err


def test_ctrl_c_while_the_command_starts_ends_it_as_the_signal_does(inputs, installed):
    """Hostile pass, item 15: Ctrl-C in the first half second (Python and
    Snakemake importing) printed a KeyboardInterrupt traceback."""
    for delay in (0.05, 0.15, 0.3, 0.5, 0.8):
        process = subprocess.Popen(
            ["snakeshuf", "a.jsonl", "-o", "c.jsonl", "--memory", "160M"], cwd=inputs, env=installed,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, f"{delay} s:\n{stderr[-3000:]}"
        assert process.returncode in (-signal.SIGINT, 130, 1), (delay, process.returncode)
        assert not (inputs / "c.jsonl.lock").exists()


def test_a_bundled_profile_is_the_workflow_profile_and_a_users_a_global_one(tmp_path):
    """Found by a review: a workflow profile wins key by key over --profile,
    so the default one would undo the SLURM profile's retries."""
    from snakeshuf.control.cli import parser, snakemake_arguments

    def profiles(*options):
        command = snakemake_arguments(parser().parse_args(["in.txt", "-o", "o.txt", *options]), str(REPO), "s", "c")
        return [(flag, command[i + 1]) for i, flag in enumerate(command) if flag.endswith("profile")]

    assert profiles("--profile", "slurm") == [("--workflow-profile", str(REPO / "profiles" / "slurm"))]
    assert profiles() == [("--workflow-profile", str(REPO / "profiles" / "default"))]
    assert profiles("--profile", str(tmp_path)) == [
        ("--workflow-profile", str(REPO / "profiles" / "default")), ("--profile", str(tmp_path))]


@pytest.mark.parametrize("flag", ["-z", "--zero-terminated"])
def test_zero_terminated_is_the_nul_separator_as_in_shuf(flag):
    from snakeshuf.control.cli import config_of, parser

    assert config_of(parser().parse_args(["in.txt", "-o", "out.txt", flag]))["separator"] == "nul"
    assert "separator" not in config_of(parser().parse_args(["in.txt", "-o", "out.txt"]))


def tree(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_the_command_leaves_nothing_but_the_output_and_keeps_its_logs_on_failure(inputs, installed):
    """Issue 28, item 3: Snakemake's records, the logs, the scratch files and
    the configuration live in one state directory per output, beside it, gone
    after success; a failed run keeps it, says where its logs are, and the
    same command resumes from it. Relative paths, a sample sheet's rows too,
    are the current directory's."""
    (inputs / "sheet.tsv").write_text("path\nmore/0.jsonl\nmore/2.jsonl\n")
    before = tree(inputs)
    args = ["--sample-sheet", "sheet.tsv", "-o", "out/s.jsonl", "--memory", "160M"]
    failed = snakeshuf(inputs, {**installed, "SNAKESHUF_FAIL_BUCKETS": "0"}, *args)
    assert failed.returncode == 1, failed.stderr[-3000:]
    [state] = (inputs / "out").glob(".snakeshuf-s.jsonl-*")
    assert f"the run's logs are in {state / 'logs'}" in failed.stderr
    assert list((state / "logs").rglob("*.log"))
    resumed = snakeshuf(inputs, installed, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "rule split_chunk" not in resumed.stderr, "the split jobs of the failed run were redone"
    assert tree(inputs) == sorted(before + ["out", "out/s.jsonl", "out/s.jsonl.summary.json"])
    config = {"sample_sheet": str(inputs / "sheet.tsv"), "output": "s.jsonl", "memory_mb": 160}
    (inputs / "direct").mkdir()
    (inputs / "direct" / "more").symlink_to(inputs / "more")
    run_workflow(inputs / "direct", config)
    assert (inputs / "out" / "s.jsonl").read_bytes() == (inputs / "direct" / "s.jsonl").read_bytes()


def test_the_same_command_twice_at_once_one_runs_and_the_other_says_why(inputs, installed):
    """Found by a hostile pass: the loser got Snakemake's 'locked' error with
    advice to --unlock (harmful while the other runs), or a failed write of
    the shared configuration file."""
    args = ["snakeshuf", "a.jsonl", "-o", "twice.jsonl", "--memory", "160M", "--cores", "1"]
    runs = [subprocess.Popen(args, cwd=inputs, env=installed, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = sorted((run.wait(timeout=300), run.stderr.read()) for run in runs)
    assert [code for code, _ in results] == [0, 1], results
    assert "is being written by another run (snakeshuf PID" in results[1][1] and "--unlock" not in results[1][1]
    direct = {"inputs": [str(inputs / "a.jsonl")], "output": "twice.jsonl", "memory_mb": 160}
    run_workflow(inputs / "direct", direct)
    assert (inputs / "twice.jsonl").read_bytes() == (inputs / "direct" / "twice.jsonl").read_bytes()


@pytest.mark.parametrize("name, message", [
    ("out.txt.partial", "the run uses that name for the unfinished output"),
    ("out.txt.lock", "is not a lock snakeshuf wrote"),
])
def test_the_command_leaves_someones_file_at_a_name_the_run_uses_alone(inputs, installed, name, message):
    """Found by a review: the command takes the output's lock before the
    workflow's check, which took that lock for a live run's and passed."""
    (inputs / name).write_bytes(b"precious\n")
    result = snakeshuf(inputs, installed, "a.jsonl", "-o", "out.txt", "--memory", "160M")
    assert result.returncode != 0 and message in result.stderr, result.stderr[-3000:]
    assert (inputs / name).read_bytes() == b"precious\n" and not (inputs / "out.txt").exists()


def test_a_run_to_stdout_leaves_no_state_whatever_happens(inputs, installed):
    """Found by a review: a failed or stopped run to standard output kept its
    state (a copy of stdin among it), which nothing can resume; SIGTERM while
    the result was copied out was ignored."""
    scratch = inputs / "scratch"
    scratch.mkdir()
    args = ["snakeshuf", "a.jsonl", "-o", "-", "--memory", "160M", "--scratch", str(scratch)]
    failing = {**installed, "SNAKESHUF_FAIL_BUCKETS": "0"}
    failed = subprocess.run(args, cwd=inputs, env=failing, capture_output=True, text=True)
    assert failed.returncode == 1 and os.listdir(scratch) == [], failed.stderr[-2000:]
    run = subprocess.Popen(args, cwd=inputs, env=installed, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in run.stderr:  # the run is done; its 2 MiB fill the pipe, which nobody reads
        if "per stage" in line:
            break
    time.sleep(0.5)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=20) == 128 + signal.SIGTERM
    assert os.listdir(scratch) == []


def test_a_dry_run_does_not_read_a_pipe(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["-", "-o", "out.txt", "--dry-run"])
    assert stopped.value.code == 2 and "--dry-run would read the pipes" in capsys.readouterr().err


def test_weights_and_dedup_from_the_command(tmp_path, installed):
    """--weight SOURCE=W names an input as given (a glob is one source) and
    --dedup-field a JSONL field; the summary counts each source."""
    (tmp_path / "more").mkdir()
    for i in range(3):
        (tmp_path / "more" / f"{i}.jsonl").write_text("".join(f'{{"text": "m{j % 7}"}}\n' for j in range(40)))
    (tmp_path / "a.jsonl").write_text("".join(f'{{"text": "a{j}", "n": {j}}}\n' for j in range(100)))
    weighted = snakeshuf(tmp_path, installed, "a.jsonl", "more/*.jsonl", "--weight", "a.jsonl=0.25", "-o", "out/w.jsonl",
                         "--memory", "160M")
    assert weighted.returncode == 0, weighted.stderr[-3000:]
    sources = json.loads((tmp_path / "out/w.jsonl.summary.json").read_text())["sources"]
    assert [(s["source"], s["records_in"], s["records_out"]) for s in sources] == [
        ("a.jsonl", 100, 25), ("more/*.jsonl", 120, 120)]
    deduplicated = snakeshuf(tmp_path, installed, "a.jsonl", "more/*.jsonl", "--dedup-field", "text", "-o", "out/d.jsonl",
                             "--memory", "160M")
    assert deduplicated.returncode == 0, deduplicated.stderr[-3000:]
    sources = json.loads((tmp_path / "out/d.jsonl.summary.json").read_text())["sources"]
    assert [(s["records_out"], s["duplicates"]) for s in sources] == [(100, 0), (7, 113)]
    assert "107 records (from 220 read: weights, dedup)" in deduplicated.stderr


def test_standard_input_takes_a_weight_and_is_read_as_jsonl_for_a_field(tmp_path, installed):
    """Hostile pass on issue 29: `--weight -=2` was read as an option, and a
    field of standard input could not be read (no name, no format: the
    error named the copy's scratch path)."""
    text = "".join(f'{{"text": "t{i % 4}"}}\n' for i in range(10))
    weighted = subprocess.run(["snakeshuf", "-", "--weight", "-=2", "-o", "w.jsonl", "--memory", "160M"], input=text,
                              cwd=tmp_path, env=installed, capture_output=True, text=True)
    assert weighted.returncode == 0, weighted.stderr[-2000:]
    assert len((tmp_path / "w.jsonl").read_text().splitlines()) == 20
    deduplicated = subprocess.run(["snakeshuf", "-", "--dedup-field", "text", "-o", "d.jsonl", "--memory", "160M"],
                                  input=text, cwd=tmp_path, env=installed, capture_output=True, text=True)
    assert deduplicated.returncode == 0, deduplicated.stderr[-2000:]
    assert sorted((tmp_path / "d.jsonl").read_text().splitlines()) == [f'{{"text": "t{i}"}}' for i in range(4)]


def test_a_configuration_error_after_a_pipe_was_copied_leaves_no_state(tmp_path, installed):
    """Hostile pass on issue 29: the state directory with the copy of
    standard input stayed after an exit-2 configuration error."""
    refused = subprocess.run(["snakeshuf", "-", "--dedup-field", "text", "-o", "d.txt", "--memory", "160M"],
                             input="a\n", cwd=tmp_path, env=installed, capture_output=True, text=True)
    assert refused.returncode == 2 and "is not named .jsonl, .tsv or .csv" in refused.stderr  # seen in the copy
    assert sorted(os.listdir(tmp_path)) == []
