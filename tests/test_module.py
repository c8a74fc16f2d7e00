"""snakeshuf as a Snakemake module of another workflow: two instances (two
corpora) in one outer workflow, whose own rule consumes both shuffled outputs."""

import subprocess
import sys
from pathlib import Path

from conftest import REPO, assert_published_as_the_reference, corpus_file

INSTANCES = {
    "web": {"inputs": ["web/*.txt"], "output": "shuffled/web.txt", "seed": 1, "memory_mb": 160},
    "books": {"inputs": ["books/*.txt"], "output": "shuffled/books.txt.gz", "seed": 2, "shards": 3},
}

OUTER = """
rule count:
    input:
        "shuffled/web.txt",
        expand("shuffled/books.{{i:05d}}-of-00003.txt.gz", i=range(3)),
    output:
        "counts.txt",
    shell:
        "wc -c {{input}} > {{output}}"

{modules}
"""

MODULE = """
module {name}:
    snakefile:
        {snakefile!r}
    config:
        {config!r}


use rule * from {name} as {name}_*
"""


def outer_workflow(workdir):
    modules = "".join(
        MODULE.format(name=name, snakefile=str(REPO / "Snakefile"), config=config)
        for name, config in INSTANCES.items()
    )
    (workdir / "Snakefile").write_text(OUTER.format(modules=modules))
    for name in INSTANCES:
        (workdir / name).mkdir()
        for i in range(3):
            corpus_file(workdir / name / f"{i}.txt", 3 << 20, seed=10 * len(name) + i)


def run_outer(workdir, *args):
    snakemake = str(Path(sys.executable).parent / "snakemake")
    return subprocess.run(
        [snakemake, "--cores", "2", "--show-failed-logs", *args],
        cwd=workdir, capture_output=True, text=True,
    )


def test_two_module_instances_publish_the_reference_and_leave_no_scratch(tmp_path):
    outer_workflow(tmp_path)
    result = run_outer(tmp_path)
    assert result.returncode == 0, result.stderr[-6000:]
    assert (tmp_path / "counts.txt").exists(), "the outer workflow's own default target did not run"
    assert result.stderr.count("snakeshuf plan:") == 2, "each instance prints its plan"
    for config in INSTANCES.values():
        assert_published_as_the_reference(tmp_path, config)
    assert not [p for p in (tmp_path / "scratch").rglob("*") if p.is_file()], "scratch left behind"
    again = run_outer(tmp_path)
    assert again.returncode == 0 and "Nothing to be done" in again.stderr


def test_a_module_checks_its_inputs_before_its_jobs(tmp_path):
    outer_workflow(tmp_path)
    (tmp_path / "books" / "1.txt").write_bytes(b"other header\n" + b"x\n" * 10)
    with_header = {**INSTANCES["books"], "header_lines": 1}
    (tmp_path / "Snakefile").write_text(
        MODULE.format(name="books", snakefile=str(REPO / "Snakefile"), config=with_header)
        + "\n\nrule all:\n    default_target: True\n    input:\n        rules.books_all.input,\n"
    )
    result = run_outer(tmp_path)
    assert result.returncode != 0
    assert "snakeshuf: error:" in result.stderr and "start with different headers" in result.stderr
    assert "rule books_split_chunk" not in result.stderr, "a split job ran after the check failed"
    assert not (tmp_path / "shuffled").exists()


def test_a_module_refuses_an_output_in_object_storage_before_its_jobs(tmp_path):
    """The including workflow's rules ask for a module's outputs as files,
    which an s3:// URL is not (Snakemake would look for a local path)."""
    outer_workflow(tmp_path)
    in_store = {**INSTANCES["books"], "output": "s3://bucket/books.txt"}
    (tmp_path / "Snakefile").write_text(
        MODULE.format(name="books", snakefile=str(REPO / "Snakefile"), config=in_store)
        + "\n\nrule all:\n    default_target: True\n    input:\n        rules.books_all.input,\n"
    )
    result = run_outer(tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "config key 'output': 's3://bucket/books.txt' is in object storage, but as a module snakeshuf " \
        "writes files" in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "s3:").exists()


def module_workflow(workdir, config):
    """One instance whose outputs the outer workflow's default target asks for."""
    (workdir / "Snakefile").write_text(
        MODULE.format(name="web", snakefile=str(REPO / "Snakefile"), config=config)
        + "\n\nrule all:\n    default_target: True\n    input:\n        rules.web_all.input,\n"
        + f"        {config['output']!r},\n"
    )


def test_a_module_rebuilds_an_output_another_seed_made_and_keeps_it_until_then(tmp_path):
    """Issue 27 in a module: from a fresh directory, another seed rebuilds the
    output; while the rebuild runs (here its gather fails on a damaged piece),
    the old output stays as it was. Snakemake deletes a job's outputs when it
    starts it: before rule publish, gather's outputs were the output files."""
    data = tmp_path / "data"
    data.mkdir()
    corpus_file(data / "a.txt", 1 << 20, seed=3)
    config = {"inputs": [str(data / "a.txt")], "output": str(data / "out.txt.gz"), "memory_mb": 160, "seed": 1}
    for name, seed in (("a", 1), ("b", 2)):
        (tmp_path / name).mkdir()
        module_workflow(tmp_path / name, {**config, "seed": seed})
    assert run_outer(tmp_path / "a").returncode == 0
    out = data / "out.txt.gz"
    before = out.read_bytes()
    assert run_outer(tmp_path / "b", "--until", "web_shuffle_bucket").returncode == 0
    for piece in (tmp_path / "b" / "scratch").rglob("*.piece*"):
        piece.write_bytes(piece.read_bytes()[:-1])
    failed = run_outer(tmp_path / "b")
    assert failed.returncode != 0 and "do not match" in failed.stderr, failed.stderr[-3000:]
    assert out.read_bytes() == before, "the old output was touched before the new one was published"
    result = run_outer(tmp_path / "b")
    assert result.returncode == 0, result.stderr[-6000:]
    assert "was made with seed 1; this run asks for seed 2" in result.stderr
    assert_published_as_the_reference(tmp_path / "b", {**config, "seed": 2})
    again = run_outer(tmp_path / "b")
    assert again.returncode == 0 and "Nothing to be done" in again.stderr
