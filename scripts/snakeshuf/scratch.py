"""Where a run's intermediate files live, named once for the rules (as
Snakemake patterns) and for the scripts. Scripts are given a directory and a
count, not a list of files: a 10 TB plan has thousands of buckets, and a
command line listing them all would exceed Linux's 128 KiB limit on a single
argument (the shell command Snakemake runs is one)."""

import os

RUN = "{chunk}.run"
INDEX = "{chunk}.index.npy"
TABLE = "buckets.npy"
# Beside TABLE: the global index of each output file's first record, and the total.
BOUNDS = "files.npy"
STATS = "{bucket}.json"
LOG = "{name}.log"


def run_pairs(runs_dir, chunks):
    """(run file, index) of every chunk, in chunk order."""
    return [
        (os.path.join(runs_dir, RUN.format(chunk=c)), os.path.join(runs_dir, INDEX.format(chunk=c)))
        for c in range(chunks)
    ]


def stats_files(stats_dir, buckets):
    return [os.path.join(stats_dir, STATS.format(bucket=b)) for b in range(buckets)]


def log_files(log_dir, count):
    return [os.path.join(log_dir, LOG.format(name=i)) for i in range(count)]
