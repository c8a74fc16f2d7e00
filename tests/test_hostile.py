"""Hostile names, links, permissions and a full disk: a specific message and no
partial output, or it simply works."""

import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from conftest import REPO, corpus_file, records_of, run_workflow, snakemake_command

IS_ROOT = os.geteuid() == 0


def test_file_names_with_shell_metacharacters_simply_work(workdir):
    names = ["with space.txt", "quote's \"double\".txt", "$(touch PWNED) `id`.txt", "new\nline.txt", "ünï ✓.txt"]
    for i, name in enumerate(names):
        (workdir / name).write_bytes(b"".join(b"%d line %d\n" % (i, j) for j in range(200)))
    output = "out dir/shuffled 'final' $(x).txt"
    run_workflow(workdir, {"inputs": names, "output": output})
    expected = Counter(r for name in names for r in records_of(workdir / name))
    assert Counter(records_of(workdir / output)) == expected
    assert not list(workdir.rglob("PWNED"))


def test_a_scratch_path_that_looks_like_an_option_simply_works(workdir):
    (workdir / "in.txt").write_bytes(b"".join(b"line %d\n" % j for j in range(500)))
    config = {"inputs": ["in.txt"], "output": "out.txt", "scratch": "-scratch"}
    run_workflow(workdir, config)
    assert sorted(records_of(workdir / "out.txt")) == sorted(records_of(workdir / "in.txt"))


def test_symlink_loop_is_refused(workdir):
    os.symlink("b.txt", workdir / "a.txt")
    os.symlink("a.txt", workdir / "b.txt")
    result = run_workflow(workdir, {"inputs": ["a.txt"], "output": "out.txt"}, check=False)
    assert result.returncode != 0
    assert "input 'a.txt' cannot be used: Too many levels of symbolic links" in result.stderr
    assert not (workdir / "out.txt").exists()


@pytest.fixture
def shared_dir():
    """A directory an unprivileged user can work in."""
    path = Path(tempfile.mkdtemp(prefix="snakeshuf-nobody-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


def run_as_nobody(workdir, config):
    env = {**os.environ, "HOME": str(workdir), "XDG_CACHE_HOME": str(workdir / ".cache")}
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
    command = snakemake_command(workdir, config)
    os.chmod(workdir / "test-config.yaml", 0o644)
    return subprocess.run(prefix + command, capture_output=True, text=True, env=env)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to switch to an unprivileged user")
@pytest.mark.parametrize(
    "case",
    ["unreadable input", "unwritable scratch", "unwritable output directory"],
)
def test_permission_problems_are_refused_before_any_job(shared_dir, case):
    (shared_dir / "in.txt").write_bytes(b"a\nb\n")
    (shared_dir / "in.txt").chmod(0o644)
    locked = shared_dir / "locked"
    locked.mkdir(mode=0o755)  # owned by root: nobody cannot write here
    config = {"inputs": ["in.txt"], "output": "out.txt", "scratch": "scratch"}
    if case == "unreadable input":
        (shared_dir / "in.txt").chmod(0o600)
        expected = "input 'in.txt' is not readable"
    elif case == "unwritable scratch":
        config["scratch"] = str(locked / "scratch")
        expected = f"config key 'scratch': '{locked}' is not writable"
    else:
        config["output"] = str(locked / "out.txt")
        expected = f"config key 'output': '{locked}' is not writable"
    result = run_as_nobody(shared_dir, config)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr[-3000:]
    assert not (shared_dir / "logs").exists(), "a job ran"
    assert not list(shared_dir.rglob("out.txt"))


@pytest.fixture
def small_disk():
    """A 24 MB tmpfs, unmounted afterwards."""
    path = Path(tempfile.mkdtemp(prefix="snakeshuf-small-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        path.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield path
    subprocess.run(["umount", str(path)], check=True)
    path.rmdir()


def test_full_disk_is_reported_and_the_same_command_finishes_later(workdir, small_disk):
    corpus_file(workdir / "corpus.txt", 30 << 20, seed=4)
    config = {"inputs": ["corpus.txt"], "output": "out.txt", "scratch": str(small_disk), "memory_mb": 160}

    preflight = run_workflow(workdir, config, check=False)
    assert preflight.returncode != 0
    # the scratch directory, or the run's subdirectory in it (the plan file is already there)
    assert f"not enough free disk space on the filesystem of '{small_disk}" in preflight.stderr
    assert not (workdir / "logs").exists(), "a job ran despite the preflight"

    config["check_disk_space"] = False
    full = run_workflow(workdir, config, check=False)
    assert full.returncode != 0
    assert "the disk is full writing" in full.stderr and str(small_disk) in full.stderr
    assert not (workdir / "out.txt").exists()

    subprocess.run(["mount", "-o", "remount,size=200m", str(small_disk)], check=True)
    run_workflow(workdir, config)
    reference = tmp_reference(workdir, config)
    assert (workdir / "out.txt").read_bytes() == reference


def test_a_full_disk_before_the_first_job_is_a_message_not_a_traceback(workdir, small_disk):
    corpus_file(workdir / "corpus.txt", 1 << 20, seed=4)
    with open(small_disk / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * (1 << 20))
                filler.flush()
        except OSError:
            pass
    config = {"inputs": ["corpus.txt"], "output": "out.txt", "scratch": str(small_disk), "check_disk_space": False}
    result = run_workflow(workdir, config, check=False)
    assert result.returncode != 0
    assert "snakeshuf: error: the disk is full" in result.stderr and str(small_disk) in result.stderr
    assert "Traceback" not in result.stderr and "OSError" not in result.stderr
    assert not (workdir / "logs").exists(), "a job ran"
    assert not (workdir / "out.txt").exists()


def tmp_reference(workdir, config):
    other = workdir / "reference"
    run_workflow(other, {**config, "inputs": [str(workdir / "corpus.txt")], "scratch": "scratch"})
    return (other / "out.txt").read_bytes()


def test_names_that_are_not_utf8_are_refused_naming_their_bytes(workdir):
    """Hostile pass, item 7: a Latin-1 input or output name ended in a
    UnicodeEncodeError traceback (Snakemake records file names as UTF-8)."""
    (workdir / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"a\nb\n")
    (workdir / "plain.txt").write_bytes(b"c\nd\n")
    cases = [
        ({"inputs": ["*.txt"], "output": "out.txt"}, [], "input 'caf\\xe9.txt' (config key 'inputs') has a name that is not UTF-8"),
        ({"inputs": ["plain.txt"]}, ["--config", b"output=out\xe9.txt"], "output 'out\\xe9.txt' (config key 'output')"),
    ]
    for config, extra, message in cases:
        command = snakemake_command(workdir, config, *extra)
        result = subprocess.run(command, capture_output=True)
        stderr = result.stderr.decode(errors="replace")
        assert result.returncode == 2 and message in stderr and "Traceback" not in stderr, stderr[-3000:]
        assert not (workdir / "logs").exists()


def read_only_mount_works(directory):
    probe = f"mount --bind {directory} {directory} && mount -o remount,ro,bind {directory}"
    return subprocess.run(["unshare", "-m", "sh", "-c", probe], capture_output=True).returncode == 0


def test_the_command_works_from_a_read_only_directory(tmp_path):
    """Issue 28, item 3: started in a directory mounted read-only, the
    command reads its inputs there and writes only beside OUT."""
    here, out = tmp_path / "read-only", tmp_path / "out" / "s.txt"
    here.mkdir()
    (here / "in.txt").write_bytes(b"".join(b"%d\n" % i for i in range(5000)))
    if not read_only_mount_works(here):
        pytest.skip("needs a mount namespace (root) for a read-only bind mount")
    command = [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
               "from snakeshuf.control.start import main; sys.exit(main())", str(REPO / "scripts"),
               "in.txt", "-o", str(out), "--memory", "160M", "--cores", "1"]
    script = f"mount --bind {here} {here} && mount -o remount,ro,bind {here} && cd {here} && exec \"$@\""
    result = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *command], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(here)) == ["in.txt"]
    assert sorted(os.listdir(out.parent)) == ["s.txt", "s.txt.summary.json"]
    assert sorted(out.read_bytes().splitlines(), key=int) == (here / "in.txt").read_bytes().splitlines()
