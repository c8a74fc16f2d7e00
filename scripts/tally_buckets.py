"""Rule tally_buckets (large plans only): read every split job's index once
and write the bucket table (snakeshuf.stages.tally): each bucket's records, bytes and key checksum and
where its region of the output starts; and where each output file starts in
the one order (for shards and splits).

Usage (rules/tally.smk):
  tally_buckets.py --plan PLAN --memory-mb M --table TABLE --bounds BOUNDS [--selection SELECTION]
The indexes are the plan's (snakeshuf.stages.scratch names them by chunk), so that no
command line has to hold thousands of paths. A run whose weights have
fractions is always given this job: it also chooses the candidates for extra
copies (snakeshuf.mixing.selection) and writes what it chose.
"""

import argparse

import numpy as np

from snakeshuf.planning.memory import MemoryModel
from snakeshuf.planning.spec import RunSpec
from snakeshuf.stages import jobs, tally


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--table", required=True, help="the bucket table to write")
    parser.add_argument("--bounds", required=True, help="where each output file starts in the order")
    parser.add_argument("--selection", help="the candidates chosen for extra copies (a run that chooses)")
    args = parser.parse_args(argv)
    jobs.inject_faults(memory_mb=args.memory_mb)
    spec = RunSpec.read(args.plan)
    jobs.claim(spec.paths, "tally_buckets")
    table, bounds, chosen = tally.from_indexes(spec, MemoryModel(args.memory_mb))
    if chosen is not None:
        with jobs.atomic_write(args.selection) as handle:
            chosen.save(handle)
    with jobs.atomic_write(args.bounds) as handle:
        np.save(handle, bounds)
    with jobs.atomic_write(args.table) as handle:
        np.save(handle, table)
    jobs.report("tally", buckets=spec.buckets, chunks=len(spec.chunks), memory_mb=args.memory_mb, **tally.totals(table))


if __name__ == "__main__":
    jobs.run(main)
