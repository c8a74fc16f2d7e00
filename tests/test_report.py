"""Snakemake's report of a run: the workflow's description, the summary as
tables, and figures of the buckets, each job's memory and each stage's
throughput, from a rule that a normal run does not run."""

import json
import os
import xml.etree.ElementTree as ElementTree

import pandas as pd

from conftest import corpus_file, run_workflow
from snakeshuf.outputs import report

FIGURES = {"bucket_sizes.svg": "Bytes per bucket (", "job_memory.svg": "Peak memory of each job",
           "stage_throughput.svg": "Throughput per stage"}


def svg_text(path):
    return " ".join(ElementTree.parse(path).getroot().itertext())


def test_the_report_shows_the_run(tmp_path):
    corpus = corpus_file(tmp_path / "corpus.txt", 40 << 20, seed=4)
    earlier = {"inputs": [corpus], "output": "out.txt", "seed": 8, "memory_mb": 160}
    small_unit = {**os.environ, "SNAKESHUF_MIB_BYTES": "49152"}
    # Another seed's run, with more buckets than the run reported on and a
    # tally job it does not have: their logs stay.
    run_workflow(tmp_path, earlier, env=small_unit)
    config = {**earlier, "seed": 9, "memory_mb": 180}
    normal = run_workflow(tmp_path, config)
    assert "run_report" not in normal.stderr, "a normal run built the report"
    run_workflow(tmp_path, config, "run_report", "--report", "report.html", "--report-after-run")

    html = (tmp_path / "report.html").read_text()
    assert "snakeshuf wrote a uniformly random permutation" in html and "out.txt</tt>" in html and "seed 9," in html
    for name in [*FIGURES, "summary.html"]:
        assert name in html, f"{name} is not in the report"
    [directory] = (tmp_path / "reports").iterdir()
    for name, title in FIGURES.items():
        assert title in svg_text(directory / name)

    summary = json.loads((tmp_path / "out.txt.summary.json").read_text())
    tables = (directory / "summary.html").read_text()
    assert f"{summary['outputs']['out.txt']['records']:,}" in tables
    assert f"<td>{summary['buckets']}</td>" in tables

    logs = tmp_path / "logs" / directory.name
    jobs = report.job_table({"shuffle": sorted(logs.glob("shuffle_bucket/*.log"))})
    assert len(jobs) > summary["buckets"] > 1, "the earlier run left no more bucket logs"
    assert f"({summary['buckets']} buckets)" in svg_text(directory / "bucket_sizes.svg"), "an earlier run's buckets"
    assert (logs / "tally_buckets/tally_buckets.log").exists()
    assert "tally" not in svg_text(directory / "job_memory.svg"), "an earlier run's tally job"
    assert summary["stages"]["tally"] is None, "an earlier run's tally job"
    jobs = report.job_table({"shuffle": [logs / f"shuffle_bucket/{b}.log" for b in range(summary["buckets"])],
                             "split": [logs / "split_chunk/0.log"], "gather": [logs / "gather/gather.log"]})
    buckets = jobs[jobs.stage == "shuffle"]
    assert buckets.bytes.sum() == summary["bytes"]
    assert set(jobs.stage) == {"split", "shuffle", "gather"}
    assert (jobs.peak_rss_mb < config["memory_mb"]).all()


def test_a_report_after_the_summary_was_deleted_rebuilds_the_output_first(tmp_path):
    corpus = corpus_file(tmp_path / "corpus.txt", 1 << 20, seed=5)
    config = {"inputs": [corpus], "output": "out.txt", "memory_mb": 160}
    run_workflow(tmp_path, config)
    (tmp_path / "out.txt.summary.json").unlink()
    result = run_workflow(tmp_path, config, "run_report", "--report", "r.html", "--report-after-run")
    assert "'out.txt' is rebuilt: its summary 'out.txt.summary.json' is missing" in result.stderr
    assert (tmp_path / "r.html").exists() and (tmp_path / "out.txt.summary.json").exists()


def test_many_buckets_are_drawn_as_a_histogram_and_shards_are_named(tmp_path):
    jobs = pd.DataFrame({"stage": "shuffle", "job": range(300), "bytes": [(1 + b % 7) << 20 for b in range(300)]})
    report.plot_bucket_sizes(jobs, tmp_path / "b.svg")
    text = svg_text(tmp_path / "b.svg")
    assert "(300 buckets)" in text and "MiB in a bucket" in text
    layout = [{"name": "valid", "size": 0.01, "shards": 1}, {"name": "train", "size": "rest", "shards": 3}]
    assert ", ".join(map(report.layout_text, layout)) == "valid: 0.01, train: rest in 3 shards"


def test_the_run_requirements_hold_what_snakemakes_report_needs():
    """Hostile pass, item 10: after a plain `pip install .`, --report failed with
    'Python package pygments must be installed' (the tests' environment has
    it through pytest). Snakemake's report names each package it needs so."""
    import importlib.metadata
    import re
    from pathlib import Path

    import snakemake.report

    needed = set()
    for source in Path(snakemake.report.__file__).parent.rglob("*.py"):
        needed |= set(re.findall(r"Python package (\S+) must be installed", source.read_text()))
    assert needed, "Snakemake's report no longer says what it needs: look again"
    ours = (Path(__file__).resolve().parent.parent / "requirements-run.txt").read_text()
    required = {re.split(r"[<>=\[; ]", line)[0].lower() for line in ours.splitlines() if line and line[0].isalnum()}
    required |= {  # Snakemake's own, less those of its extras ('reports' among them)
        re.split(r"[<>=\[; ]", r)[0].lower() for r in importlib.metadata.requires("snakemake") or () if "extra ==" not in r
    }
    assert needed <= required, f"not required by snakeshuf or Snakemake: {needed - required}"


def test_the_report_works_where_only_the_package_is_installed(tmp_path):
    """Hostile pass, item 10: `snakeshuf --report` failed after a plain
    `pip install .` ('Python package pygments must be installed'); the
    tests' own environment has pygments through pytest. Here a virtual
    environment holds snakeshuf and what it requires, nothing else."""
    import subprocess
    import sys

    from conftest import REPO

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # --no-compile: what is installed is the same, without bytecode (compiling
    # pandas, pyarrow, Snakemake and the rest took more than the run then saves).
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-compile", str(REPO)],
                             capture_output=True, text=True, cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-3000:]
    (tmp_path / "in.txt").write_bytes(b"".join(b"%d\n" % i for i in range(1000)))
    result = subprocess.run([str(venv / "bin" / "snakeshuf"), "in.txt", "-o", "out.txt", "--memory", "160M",
                             "--report", "r.html"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "summary.html" in (tmp_path / "r.html").read_text()
