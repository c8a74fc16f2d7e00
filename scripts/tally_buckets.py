"""Rule tally_buckets: read every split job's index once and write the bucket
table (snakeshuf/tally.py): each bucket's record, byte and key totals and where
its region of the output starts.

Usage (from rules/split.smk):
  tally_buckets.py --runs-dir DIR --chunks N --buckets K --memory-mb M [--header-bytes N] [--layout JSON] --table TABLE
TABLE's directory also gets the output files' bounds (layout.BOUNDS).
"""

import argparse
import json

import numpy as np

from snakeshuf import jobs, layout, tally


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs-dir", required=True, help="the split jobs' run files and indexes")
    parser.add_argument("--chunks", type=int, required=True)
    parser.add_argument("--buckets", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--header-bytes", type=int, default=0, help="the header's length (first in the output)")
    parser.add_argument("--layout", type=json.loads, default=[["", "rest", 1]], help="the output files (parts.layout_spec)")
    parser.add_argument("--table", required=True)
    args = parser.parse_args(argv)
    jobs.inject_faults(memory_mb=args.memory_mb)
    indexes = [index for _, index in layout.run_pairs(args.runs_dir, args.chunks)]
    table = tally.tally(indexes, args.buckets, args.header_bytes)
    bounds = tally.file_bounds(table, args.layout)
    with jobs.atomic_write(tally.bounds_path(args.table)) as handle:
        np.save(handle, bounds)
    with jobs.atomic_write(args.table) as handle:
        np.save(handle, table)
    jobs.report(
        "tally", buckets=args.buckets, chunks=args.chunks, memory_mb=args.memory_mb, **tally.totals(table)
    )


if __name__ == "__main__":
    jobs.run(main)
