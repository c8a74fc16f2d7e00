"""An output on disk counts as current only if this run's inputs, seed and
settings made it, from any working directory (issue 27). Every run here
starts in a fresh working directory, with no .snakemake/ of its own, on one
output beside the inputs; run_workflow checks each finished run against the
reference model for that run's own configuration."""

import json
import os
import subprocess

import pytest

from conftest import run_workflow, snakemake_command

MEMORY = {"memory_mb": 160}


@pytest.fixture
def place(tmp_path):
    """Inputs and the output in one directory, runs in others."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_bytes(b"".join(b"a %d\n" % i for i in range(3000)))
    return tmp_path


def run_from(place, name, check=True, **config):
    config = {"inputs": [str(place / "data" / "a.txt")], "output": str(place / "data" / "out.txt"), **MEMORY, **config}
    return run_workflow(place / name, config, check=check)


def stat_of(path):
    info = os.stat(path)
    return info.st_ino, info.st_mtime_ns, info.st_size


def test_another_seed_from_another_directory_rebuilds_and_says_why(place):
    run_from(place, "a", seed=1)
    result = run_from(place, "b", seed=2)
    assert "was made with seed 1; this run asks for seed 2" in result.stderr
    summary = json.loads((place / "data" / "out.txt.summary.json").read_text())
    assert summary["order"]["seed"] == 2


def test_an_added_input_older_than_the_output_is_shuffled_in(place):
    run_from(place, "a")
    old = place / "data" / "old.txt"
    old.write_bytes(b"".join(b"old %d\n" % i for i in range(500)))
    os.utime(old, ns=(1, 1))  # as rsync -a or tar x leave it
    result = run_from(place, "b", inputs=[str(place / "data" / "a.txt"), str(old)])
    assert f"input '{old}' is new" in result.stderr
    assert (place / "data" / "out.txt").read_bytes().count(b"old ") == 500


def test_an_input_replaced_by_another_size_with_the_old_mtime_rebuilds(place):
    run_from(place, "a")
    a = place / "data" / "a.txt"
    kept = os.stat(a)
    a.write_bytes(b"".join(b"new %d\n" % i for i in range(2000)))
    os.utime(a, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    result = run_from(place, "b")
    assert "changed size" in result.stderr


@pytest.mark.parametrize("change", ["appended to", "replaced", "summary deleted", "summary unreadable"])
def test_an_output_changed_after_publishing_is_rebuilt(place, change):
    run_from(place, "a")
    out, summary = place / "data" / "out.txt", place / "data" / "out.txt.summary.json"
    if change == "appended to":
        with open(out, "ab") as handle:
            handle.write(b"extra\n")
    elif change == "replaced":
        # As a file written in the old one's place that got its inode (CI
        # saw it) and kept an attribute of its own: same inode, same size.
        data = out.read_bytes()
        with open(out, "r+b") as handle:
            handle.write(data[::-1])
        os.setxattr(out, "user.snakeshuf.made-by", str(out).encode())
    elif change == "summary deleted":
        summary.unlink()
    else:
        summary.write_text("{not json")
    result = run_from(place, "b")
    assert "is rebuilt:" in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("kind", ["someone's file", "someone's JSON", "a link"])
def test_a_file_at_the_summarys_name_that_no_run_wrote_is_left_alone(place, kind):
    """Hostile pass: a file at out.txt.summary.json was replaced by the run's
    summary with exit 0 (an output file there is refused)."""
    summary, kept = place / "data" / "out.txt.summary.json", place / "data" / "keep.txt"
    if kind == "a link":
        kept.write_text("kept\n")
        summary.symlink_to(kept)
    else:
        summary.write_text("precious notes\n" if kind == "someone's file" else '{"notes": 1}')
    before = summary.read_text()
    result = run_from(place, "a", check=False)
    assert result.returncode != 0 and "snakeshuf: error:" in result.stderr
    assert f"'{summary}' exists and is not a" in result.stderr
    assert summary.read_text() == before and summary.is_symlink() == (kind == "a link")
    assert not (place / "data" / "out.txt").exists()
    if kind != "a link":
        run_from(place, "b", overwrite=True)


def test_a_deleted_shard_is_rebuilt(place):
    run_from(place, "a", shards=3, output=str(place / "data" / "out"))
    (place / "data" / "out.00001-of-00003").unlink()
    result = run_from(place, "b", shards=3, output=str(place / "data" / "out"))
    assert "out.00001-of-00003' is missing" in result.stderr


def test_memory_and_cores_change_nothing_on_disk(place):
    run_from(place, "a")
    before = stat_of(place / "data" / "out.txt")
    result = run_from(place, "b", memory_mb=300)
    assert "is up to date" in result.stderr
    result = run_workflow(
        place / "a", {"inputs": [str(place / "data" / "a.txt")], "output": str(place / "data" / "out.txt"), **MEMORY},
        cores=1,
    )
    assert "is up to date" in result.stderr
    assert stat_of(place / "data" / "out.txt") == before


def test_someones_file_at_the_output_path_is_never_replaced_silently(place):
    out = place / "data" / "out.txt"
    out.write_bytes(b"my notes\n")
    result = run_workflow(
        place / "a", {"inputs": [str(place / "data" / "a.txt")], "output": str(out), **MEMORY}, check=False
    )
    assert result.returncode == 2
    assert f"output '{out}' exists, and snakeshuf cannot show that it made it" in result.stderr
    assert "config key 'overwrite'" in result.stderr
    assert out.read_bytes() == b"my notes\n"
    run_from(place, "b", overwrite=True)
    assert out.read_bytes() != b"my notes\n"


def test_an_output_of_a_version_without_the_record_is_rebuilt_not_refused(place):
    run_from(place, "a")
    summary_path = place / "data" / "out.txt.summary.json"
    summary = json.loads(summary_path.read_text())
    for key in ("fingerprint", "made_by"):
        del summary[key]
    summary_path.write_text(json.dumps(summary))
    os.removexattr(place / "data" / "out.txt", "user.snakeshuf.made-by")
    result = run_from(place, "b")
    assert "is rebuilt: it was made by another version of snakeshuf's output" in result.stderr


def test_the_old_output_stays_until_the_new_one_is_published(place):
    """A rebuild whose gather fails (a damaged bucket region) leaves the old
    output as it was: Snakemake deletes a job's outputs when it starts it, so
    the published files are not gather's outputs."""
    run_from(place, "a", seed=1)
    out = place / "data" / "out.txt"
    before, data = stat_of(out), out.read_bytes()
    config = {"inputs": [str(place / "data" / "a.txt")], "output": str(out), **MEMORY, "seed": 2}
    run_workflow(place / "b", config, "--until", "shuffle_bucket")
    partial = place / "data" / "out.txt.partial"
    damaged = bytearray(partial.read_bytes())
    damaged[len(damaged) // 2] ^= 0x55
    partial.write_bytes(bytes(damaged))
    result = run_workflow(place / "b", {**config, "verify_output": "always"}, check=False)
    assert result.returncode != 0 and "do not match" in result.stderr
    assert stat_of(out) == before and out.read_bytes() == data


def test_the_same_output_spelled_otherwise_is_up_to_date(place):
    """Found by a review: an output named by its absolute path, then relative
    to the directory of a later run, was rebuilt every time."""
    run_from(place, "a")
    before = stat_of(place / "data" / "out.txt")
    for name, output in (("data", "out.txt"), ("data", "./out.txt"), (".", "data//out.txt")):
        config = {"inputs": [str(place / "data" / "a.txt")], "output": output, **MEMORY}
        # Not run_workflow: its check reads the summary's names as this run spells them.
        result = subprocess.run(snakemake_command(place / name, config), capture_output=True, text=True)
        assert result.returncode == 0 and "is up to date" in result.stderr, (output, result.stderr[-2000:])
    assert stat_of(place / "data" / "out.txt") == before


def test_a_dry_run_leaves_another_specs_interrupted_scratch(place):
    """Found by a review: a dry run of a current output deleted the scratch of
    an interrupted run of another seed on it, so that run started over."""
    run_from(place, "a", seed=1)
    config = {"inputs": [str(place / "data" / "a.txt")], "output": str(place / "data" / "out.txt"), **MEMORY}
    failed = run_workflow(place / "a", {**config, "seed": 2}, "--retries", "0", check=False,
                          env={**os.environ, "SNAKESHUF_FAIL_BUCKETS": "0"})
    assert failed.returncode != 0
    left = sorted(p.name for p in (place / "a" / "scratch").rglob("*.run"))
    assert left
    run_workflow(place / "a", {**config, "seed": 1}, "--dry-run")
    run_workflow(place / "a", {**config, "seed": 1})
    assert sorted(p.name for p in (place / "a" / "scratch").rglob("*.run")) == left


def test_a_file_another_output_set_published_is_not_replaced(place):
    """Found by a hostile pass: output 'a' with a split named 'txt' wrote over
    'a.txt', published by output 'a.txt', and each run then rebuilt over the other."""
    data = place / "data"
    run_from(place, "a", output=str(data / "s.txt"))
    before = (data / "s.txt").read_bytes()
    split = {"output": str(data / "s"), "splits": {"txt": 0.5, "b": "rest"}}
    result = run_from(place, "b", check=False, **split)
    assert result.returncode != 0
    assert f"output '{data / 's.txt'}' exists and was published with output '{data / 's.txt'}'" in result.stderr
    assert (data / "s.txt").read_bytes() == before and not (data / "s.b").exists()


@pytest.mark.parametrize("name", ["out.txt.partial", "out.txt.lock", "out.txt.summary.json.partial"])
def test_someones_file_at_a_name_the_run_uses_for_itself_is_left_alone(place, name):
    """Found by a hostile pass: a file at the run's unfinished output's,
    summary's or lock's name was overwritten or deleted, exit 0."""
    someones = place / "data" / name
    someones.write_bytes(b"precious\n")
    result = run_from(place, "a", check=False)
    assert result.returncode != 0 and f"'{someones}' exists, and the run uses that name" in result.stderr
    assert someones.read_bytes() == b"precious\n" and not (place / "data" / "out.txt").exists()


def test_a_published_split_at_the_name_of_the_next_runs_unfinished_output_is_left_alone(place):
    data = place / "data"
    run_from(place, "a", output=str(data / "out"), splits={"partial": 0.5, "train": "rest"})
    published = (data / "out.partial").read_bytes()
    result = run_from(place, "b", output=str(data / "out"), check=False)
    assert result.returncode != 0 and "a published file of the output set on disk" in result.stderr
    assert (data / "out.partial").read_bytes() == published


def test_an_output_named_through_a_link_is_still_this_sets(place):
    """Found by a review: a published file is signed with its output set's
    path; named through a symbolic link to its directory, the next run took
    it for another set's and refused to rebuild it."""
    (place / "link").symlink_to(place / "data")
    run_from(place, "a", seed=1, output=str(place / "link" / "out.txt"))
    result = run_from(place, "b", seed=2)
    assert "was made with seed 1; this run asks for seed 2" in result.stderr


@pytest.mark.parametrize("then, now, why", [
    ([10, 5, "e1"], [10, 5, "e2"], "input 's3://b/a.txt' was modified"),  # written again within its second
    ([10, 5, "e1"], [12, 6, "e2"], "input 's3://b/a.txt' changed size (10 -> 12 bytes)"),
    ([10, 5], [10, 6], "input 's3://b/a.txt' was modified"),
    ([], [10, 6], "its summary's record of what made it is unreadable"),
    # found in review: summaries of the previous version have no ETags
    ([10, 5], [10, 5, "e1"], "input 's3://b/a.txt' was recorded without its ETag (by an earlier snakeshuf)"),
])
def test_the_reason_for_a_rebuild_names_the_input_that_changed(then, now, why):
    """Found by a hostile pass: an input entry with an object's ETag made
    every rebuild say the summary was unreadable."""
    from snakeshuf.outputs.provenance import described_difference

    record = {"format": 3, "seed": 1, "inputs": [["s3://b/a.txt", *then]]}
    assert described_difference(record, {**record, "inputs": [["s3://b/a.txt", *now]]}).startswith(why)
