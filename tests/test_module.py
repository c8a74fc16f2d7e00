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
