#!/usr/bin/env python3
"""Benchmark snakeshuf against GNU shuf, sort -R and terashuf, side by side.

Generates (or reuses) a corpus of the requested size, then runs every tool on
it in turn, `--runs` rounds, interleaved so that all tools see the same
machine state. Prints per tool the median wall time, MB/s, the largest
process's peak RSS (GNU time's %M) and the ratios to shuf, terashuf and the
I/O floor (twice the time of `cp corpus copy && sync`: the data read and
written twice), and snakeshuf's time per stage. The Snakemake floor is
snakeshuf's DAG for the corpus with jobs that only start Python and import
NumPy (bench/empty_dag.smk): what a run costs before any work.

  python bench/run_bench.py --size 4G --memory-mb 512 --cores 2 --runs 3 --terashuf ~/terashuf/terashuf

terashuf is optional and never bundled: build it from its public source
(github.com/alexandres/terashuf: `make`, a C++11 compiler and nothing else)
and pass the binary with --terashuf. It gets the same memory per process
(MEMORY=memory_mb/1024 GB) and a fixed SEED.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from make_corpus import generate, parse_size
from plan_scale import job_counts

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
PLANNED_JOBS = {}  # corpus path: (split jobs, tally jobs, bucket jobs)
TIME = "/usr/bin/time"
# Free disk a round needs, in corpus sizes: the corpus, snakeshuf's run files
# and output (or another tool's output and temporary files), and some slack.
DISK_PER_CORPUS = 3.2


def timed(command, **kwargs):
    """(wall seconds, peak RSS in MB of the largest process) of a command."""
    start = time.perf_counter()
    result = subprocess.run([TIME, "-f", "%M", *command], capture_output=True, text=True, **kwargs)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    peak_kb = int(result.stderr.strip().splitlines()[-1])
    return wall, peak_kb / 1024


def fresh_directory(path):
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


def snakeshuf_command(corpus, out_dir, args, *options):
    """The snakemake command that shuffles `corpus` in out_dir/snakeshuf."""
    workdir = out_dir / "snakeshuf"
    config = {
        "inputs": [str(corpus)], "output": str(out_dir / "snakeshuf.out"),
        "memory_mb": args.memory_mb, "seed": 1, "scratch": str(workdir / "scratch"),
    }
    (workdir / "config.yaml").write_text(json.dumps(config))
    return [
        str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"), "--cores", str(args.cores), *options,
    ]


def remove_snakeshuf_run(out_dir):
    """A fresh directory for the next run, and no output of an earlier one."""
    for leftover in out_dir.glob("snakeshuf.out*"):
        leftover.unlink()
    return fresh_directory(out_dir / "snakeshuf")


def snakeshuf(corpus, out_dir, args):
    workdir = remove_snakeshuf_run(out_dir)
    wall, _ = timed(snakeshuf_command(corpus, out_dir, args, "--quiet"))
    return wall, largest_job_peak(workdir)


def planned_jobs(corpus, out_dir, args):
    """snakeshuf's numbers of split, tally and bucket jobs for this corpus (a
    dry run, once per corpus: they do not change between rounds)."""
    if corpus not in PLANNED_JOBS:
        remove_snakeshuf_run(out_dir)
        command = snakeshuf_command(corpus, out_dir, args, "--dry-run")
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"snakeshuf's dry run failed: {' '.join(command)}\n{result.stderr[-3000:]}")
        PLANNED_JOBS[corpus] = job_counts(result.stdout)
    return PLANNED_JOBS[corpus]


def snakemake_floor(corpus, out_dir, args):
    """snakeshuf's DAG (split jobs, a tally job in a large plan, bucket jobs,
    gather) with jobs that only start Python and import NumPy: what Snakemake
    and job starts cost."""
    chunks, tally, buckets = planned_jobs(corpus, out_dir, args)
    workdir = fresh_directory(out_dir / "snakemake-floor")
    command = [
        str(SNAKEMAKE), "--snakefile", str(REPO / "bench" / "empty_dag.smk"), "--directory", str(workdir),
        "--workflow-profile", str(REPO / "profiles" / "default"), "--config", f"chunks={chunks}",
        f"tally={tally}", f"buckets={buckets}", "--cores", str(args.cores), "--quiet",
    ]
    wall, _ = timed(command)
    shutil.rmtree(workdir)
    return wall, 0.0


def job_reports(workdir):
    for log in (workdir / "logs").rglob("*.log"):
        for line in log.read_text().splitlines():
            if line.startswith("{"):
                yield json.loads(line)


def largest_job_peak(workdir):
    """The largest job's own peak RSS (VmHWM). GNU time's %M would report a
    forked job's ru_maxrss, which includes Snakemake's size at the fork."""
    return max(report["peak_rss_mb"] for report in job_reports(workdir))


def stage_seconds(out_dir):
    """The last snakeshuf run per stage: the number of jobs, their summed
    seconds and CPU seconds (the difference is I/O wait), and the stage's
    span from its first job's start to its last job's end (a job's own
    clock starts after its imports)."""
    jobs = {}
    for report in job_reports(out_dir / "snakeshuf"):
        end = report["finished_at"]
        jobs.setdefault(report["stage"], []).append((report["seconds"], report["cpu_seconds"], end - report["seconds"], end))
    stages = {}
    for stage, stage_jobs in jobs.items():
        seconds, cpu, starts, ends = zip(*stage_jobs)
        stages[stage] = (len(stage_jobs), sum(seconds), sum(cpu), max(ends) - min(starts))
    return stages


def io_floor(corpus, out_dir):
    copy = out_dir / "copy"
    start = time.perf_counter()
    subprocess.run(["cp", str(corpus), str(copy)], check=True)
    os.sync()
    wall = time.perf_counter() - start
    copy.unlink()
    return 2 * wall, 0.0


def terashuf(binary):
    def run(corpus, out_dir, args):
        env = {**os.environ, "MEMORY": str(args.memory_mb / 1024), "SEED": "1", "TMPDIR": str(out_dir)}
        command = ["sh", "-c", 'exec "$0" < "$1" > "$2"', str(binary), str(corpus), str(out_dir / "terashuf.out")]
        return timed(command, env=env)

    return run


TOOLS = {
    "snakeshuf": snakeshuf,
    "shuf": lambda corpus, out_dir, args: timed(["shuf", str(corpus), "-o", str(out_dir / "shuf.out")]),
    "sort -R": lambda corpus, out_dir, args: timed(
        ["sort", "-R", str(corpus), "-o", str(out_dir / "sort.out")], env={**os.environ, "LC_ALL": "C"}
    ),
    "I/O floor": lambda corpus, out_dir, args: io_floor(corpus, out_dir),
    "Snakemake floor": snakemake_floor,
}
MOVES_NO_DATA = {"Snakemake floor"}


def table(results, size, rounds):
    medians = {tool: statistics.median(w for w, _ in runs) for tool, runs in results.items()}
    bases = [tool for tool in ("shuf", "terashuf", "I/O floor") if tool in medians]
    lines = [
        f"corpus {size / 2**30:.2f} GiB, {rounds} interleaved rounds, medians",
        "| tool | runs | wall (s) | MB/s | peak RSS (MB) |" + "".join(f" wall / {b} |" for b in bases),
        "|---|---|---|---|---|" + "---|" * len(bases),
    ]
    for tool, runs in results.items():
        wall, rss = medians[tool], max(r for _, r in runs)
        ratios = "".join(f" {wall / medians[b]:.2f} |" for b in bases)
        rss_text = f"{rss:.0f}" if rss else "-"
        rate = "-" if tool in MOVES_NO_DATA else f"{size / 1e6 / wall:.0f}"
        lines.append(f"| {tool} | {len(runs)} | {wall:.1f} | {rate} | {rss_text} |{ratios}")
    return "\n".join(lines)


def remove_outputs(workdir):
    for name in ("snakeshuf.out", "shuf.out", "sort.out", "terashuf.out"):
        (workdir / name).unlink(missing_ok=True)


def check_free_disk(workdir, size, corpus_exists):
    needed = (DISK_PER_CORPUS - (1 if corpus_exists else 0)) * size
    free = shutil.disk_usage(workdir).free
    if free < needed:
        sys.exit(
            f"not enough free disk in {workdir}: a {size / 2**30:.1f} GiB corpus needs about "
            f"{needed / 2**30:.1f} GiB, {free / 2**30:.1f} GiB are free; use --workdir elsewhere"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"))
    parser.add_argument("--corpus", type=Path, help="use this file instead of generating one")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "snakeshuf-bench")
    parser.add_argument("--memory-mb", type=int, default=512)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--slow-runs", type=int, default=None,
                        help="rounds that include sort -R (default: all; it is slow)")
    parser.add_argument("--terashuf", type=Path, metavar="PATH", help="a terashuf binary: adds it to the tools")
    parser.add_argument("--tools", help=f"comma-separated, from: {', '.join(TOOLS)}, terashuf (default: all)")
    args = parser.parse_args(argv)
    if args.terashuf:
        TOOLS["terashuf"] = terashuf(args.terashuf.resolve())
    args.workdir.mkdir(parents=True, exist_ok=True)
    corpus = args.corpus or args.workdir / f"corpus-{args.size}.txt"
    check_free_disk(args.workdir, corpus.stat().st_size if corpus.exists() else args.size, corpus.exists())
    if not corpus.exists():
        print(f"generating {corpus} ...", flush=True)
        with open(corpus, "wb") as out:
            generate(out, args.size, seed=1, fmt="text")
    size = corpus.stat().st_size
    tools = args.tools.split(",") if args.tools else list(TOOLS)
    unknown = set(tools) - set(TOOLS)
    if unknown:
        sys.exit(f"unknown tools {sorted(unknown)} (terashuf needs --terashuf PATH)")
    results = {tool: [] for tool in tools}
    stage_rounds = []
    for round_index in range(args.runs):
        for tool in tools:
            if tool == "sort -R" and args.slow_runs is not None and round_index >= args.slow_runs:
                continue
            wall, rss = TOOLS[tool](corpus, args.workdir, args)
            results[tool].append((wall, rss))
            if tool == "snakeshuf":
                stage_rounds.append(stage_seconds(args.workdir))
            print(f"round {round_index + 1}: {tool}: {wall:.1f} s, {rss:.0f} MB", flush=True)
            remove_outputs(args.workdir)  # so that the disk holds one tool's files at a time
    print()
    print(table({t: r for t, r in results.items() if r}, size, args.runs))
    if stage_rounds:
        print(f"\nsnakeshuf per stage, medians of {len(stage_rounds)} runs: summed job time, and the stage's span")
        for stage, (jobs, *_) in stage_rounds[-1].items():
            seconds, cpu, span = (statistics.median(r[stage][i] for r in stage_rounds) for i in (1, 2, 3))
            print(f"  {stage}: {jobs} jobs, {seconds:.1f} s ({cpu:.2f} s CPU), {size / 1e6 / seconds:.0f} MB/s per core;"
                  f" span {span:.1f} s")


if __name__ == "__main__":
    main()
