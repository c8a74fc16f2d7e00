"""Snakemake's report of a run: the workflow's description, the summary as
tables, and figures of the buckets, each job's memory and each stage's
throughput, from a rule that a normal run does not run."""

import json
import xml.etree.ElementTree as ElementTree

from conftest import corpus_file, run_workflow
from snakeshuf import report

FIGURES = {"bucket_sizes.svg": "Bytes per bucket", "job_memory.svg": "Peak memory of each job",
           "stage_throughput.svg": "Throughput per stage"}


def svg_text(path):
    return " ".join(ElementTree.parse(path).getroot().itertext())


def test_the_report_shows_the_run(tmp_path):
    corpus = corpus_file(tmp_path / "corpus.txt", 40 << 20, seed=4)
    config = {"inputs": [corpus], "output": "out.txt", "seed": 9, "memory_mb": 160}
    normal = run_workflow(tmp_path, config)
    assert "run_report" not in normal.stderr, "a normal run built the report"
    run_workflow(tmp_path, config, "run_report", "--report", "report.html", "--report-after-run")

    html = (tmp_path / "report.html").read_text()
    assert "snakeshuf wrote a uniformly random permutation" in html and "out.txt</tt> (seed 9," in html
    for name in [*FIGURES, "summary.html"]:
        assert name in html, f"{name} is not in the report"
    [directory] = (tmp_path / "reports").iterdir()
    for name, title in FIGURES.items():
        assert title in svg_text(directory / name)

    summary = json.loads((tmp_path / "out.txt.summary.json").read_text())
    tables = (directory / "summary.html").read_text()
    assert f"{summary['outputs']['out.txt']['records']:,}" in tables
    assert f"<td>{summary['buckets']}</td>" in tables

    jobs = report.job_table(tmp_path / "logs" / directory.name)
    buckets = jobs[jobs.stage == "shuffle"]
    assert sorted(buckets.job) == list(range(summary["buckets"])) and summary["buckets"] > 1
    assert buckets.bytes.sum() == summary["bytes"]
    assert set(jobs.stage) == {"split", "tally", "shuffle", "gather"}
    assert (jobs.peak_rss_mb < config["memory_mb"]).all()
