#!/usr/bin/env python3
"""How the workflow plans corpora far larger than this disk: sparse input files
(made with truncate, so they take no space; GNU time measures the RSS) and a dry run (`snakemake -n`) per
size and memory_mb, printing the job counts, per-job sizes, the dry run's wall
time and the Snakemake process's peak RSS.

  python bench/plan_scale.py --sizes 100G,1T,10T,100T --memory-mb 1024,4096,16384
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FILE_BYTES = 10 << 30
UNITS = {"G": 1 << 30, "T": 1 << 40}


def sparse_corpus(directory, total_bytes):
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(max(1, total_bytes // FILE_BYTES)):
        with open(directory / f"f{i:05}.txt", "wb") as handle:
            handle.truncate(FILE_BYTES)


def dry_run(directory, memory_mb):
    command = [
        "/usr/bin/time", "-f", "peak_rss_kb=%M", str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(directory), "-n", "--cores", "2", "--configfile", str(directory / "plan.yaml"),
    ]
    config = {"inputs": ["f*.txt"], "output": "out.txt", "check_disk_space": False, "memory_mb": memory_mb}
    (directory / "plan.yaml").write_text(json.dumps(config))
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode:
        refused = re.search(r"snakeshuf: error: (.*)", result.stderr)
        raise SystemExit(refused.group(1) if refused else result.stderr)
    peak_mb = int(re.search(r"peak_rss_kb=(\d+)", result.stderr).group(1)) / 1024
    chunks, _, buckets = job_counts(result.stdout)
    return seconds, peak_mb, chunks, buckets


PLANNED_RULES = ("split_chunk", "tally_buckets", "shuffle_bucket")


def job_counts(dry_run_output):
    """The numbers of split, tally (0 in a small plan) and bucket jobs in the
    table a dry run prints."""
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", dry_run_output, re.M))
    return tuple(int(counts.get(rule, 0)) for rule in PLANNED_RULES)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100G,1T,10T")
    parser.add_argument("--memory-mb", default="1024,4096,16384")
    args = parser.parse_args()
    print("| input | memory_mb | split jobs | GiB each | bucket jobs | GiB each | dry run (s) | Snakemake peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        total = int(float(size[:-1]) * UNITS[size[-1]])
        with tempfile.TemporaryDirectory(dir=REPO.parent) as scratch:
            sparse_corpus(Path(scratch), total)
            for memory_mb in map(int, args.memory_mb.split(",")):
                try:
                    seconds, peak_mb, chunks, buckets = dry_run(Path(scratch), memory_mb)
                except SystemExit as refused:
                    print(f"| {size} | {memory_mb} | refused: {refused} |", flush=True)
                    continue
                print(f"| {size} | {memory_mb} | {chunks} | {total / chunks / 2**30:.1f} | {buckets:,} "
                      f"| {total / buckets / 2**30:.2f} | {seconds:.1f} | {peak_mb:.0f} |", flush=True)


if __name__ == "__main__":
    main()
