"""Rule shuffle_bucket: read one bucket's sections from every run file, order the
records by key and write them where they go in the output.

The bucket table gives the bucket's place in the one order, so its records go
straight to their final place: for one plain output, its region of the output
file (under its temporary name, written with pwrite, so gather copies
nothing); otherwise pieces, one per output file they fall in (snakeshuf.sinks),
which gather joins. What the job wrote is recorded for gather to check
(snakeshuf.buckets).

Usage (rules/shuffle.smk):
  shuffle_bucket.py --plan PLAN --bucket J --memory-mb M --table TABLE --bounds BOUNDS --stats JSON
The run files and their indexes are where the plan says (snakeshuf.scratch):
the table stands for all of them.
"""

import argparse
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from snakeshuf import jobs
from snakeshuf import keys as keylib
from snakeshuf import runfile, tally
from snakeshuf.buckets import BucketStats
from snakeshuf.directio import STAGING_BYTES, DirectReader
from snakeshuf.errors import IntegrityError
from snakeshuf.memory import OUTPUT_SLICE_BYTES, MemoryModel
from snakeshuf.progress import JobProgress
from snakeshuf.sinks import PieceSink, RegionSink
from snakeshuf.spec import RunSpec

# Threads reading a bucket's run files, sharing one job's staging memory.
READ_THREADS = 2


class BucketOutput:
    """Writes records in key order into a sink, keeping count of them."""

    def __init__(self, sink, separator, where):
        self.sink, self.separator, self.where = sink, separator, where
        self.records = self.nbytes = self.key_sum = 0

    def write_sorted(self, keys, lengths, data):
        """Write the records of `data` (of `lengths`) in the order of their `keys`,
        in slices of about OUTPUT_SLICE_BYTES, cut where output files begin."""
        records = runfile.records_of_lengths(data, lengths, self.separator, self.where)
        order = keylib.order_by_key(keys)
        step = max(1, len(keys) * OUTPUT_SLICE_BYTES // max(1, len(data)))
        lo = 0
        while lo < len(order):
            hi = min(len(order), lo + step, lo + self.sink.room())
            taken = runfile.take(records, order[lo:hi])
            self.sink.write(taken, hi - lo)
            self.nbytes += len(taken)
            lo = hi
        self.records += len(keys)
        self.key_sum = (self.key_sum + keylib.key_checksum(keys)) & keylib.MASK64


def load_whole(sections, records, nbytes):
    """All keys, record lengths and records of the bucket, read straight into
    three arrays, a run file a task: while one thread waits on the disk the
    other copies and checksums (NumPy, CRC-32C and preadv release the GIL)."""
    keys, lengths, data = np.empty(records, np.uint64), np.empty(records, np.uint32), np.empty(nbytes, np.uint8)
    tasks, k, d = [], 0, 0
    for run, run_rows in sections:
        places = []
        for row in run_rows:
            n, b = int(row[runfile.RECORDS]), int(row[runfile.NBYTES])
            places.append((row, keys[k : k + n], lengths[k : k + n], data[d : d + b]))
            k, d = k + n, d + b
        tasks.append((run, places))
    with ThreadPoolExecutor(READ_THREADS) as pool:
        for done in [pool.submit(read_run_sections, *task) for task in tasks]:
            done.result()
    return keys, lengths, data


def read_run_sections(run, places):
    with DirectReader(run, STAGING_BYTES // READ_THREADS) as reader:
        for row, *arrays in places:
            runfile.read_section(reader, row, *arrays)


def load_pass(sections, spec, passes, which):
    """The keys, lengths and records of the bucket whose keys fall in key
    sub-range `which` of `passes` (a bucket too large for one pass)."""
    found = []
    for run, run_rows in sections:
        with DirectReader(run) as reader:
            for row in run_rows:
                keys, lengths, data = runfile.read_section(reader, row)
                chosen = np.flatnonzero(keylib.sub_range_of(keys, spec.buckets, passes) == which)
                if len(chosen):
                    records = runfile.records_of_lengths(data, lengths, spec.separator, f"run file '{run}'")
                    taken = np.frombuffer(runfile.take(records, chosen), np.uint8).copy()
                    found.append((keys[chosen], lengths[chosen], taken))
    if not found:
        return np.empty(0, np.uint64), np.empty(0, np.uint32), np.empty(0, np.uint8)
    return tuple(np.concatenate(column) for column in zip(*found))


def expected_totals(sections):
    rows = [rs for _, rs in sections if len(rs)]
    if not rows:
        return 0, 0, 0
    rows = np.concatenate(rows)
    key_sum = int(rows[:, runfile.KEY_SUM].sum(dtype=np.uint64))
    return int(rows[:, runfile.RECORDS].sum()), int(rows[:, runfile.NBYTES].sum()), key_sum


def check_against_table(row, totals, where):
    if (row["records"], row["bytes"], row["key_sum"]) != totals:
        raise IntegrityError(
            f"{where}: the run indexes list {totals[0]} records / {totals[1]} bytes but the bucket "
            f"table {row['records']} / {row['bytes']} (or the key checksums differ): an index "
            "changed after the table was made; delete the scratch directory and run again"
        )


def open_sink(spec, row, bounds_path, bucket):
    if spec.in_place:
        return RegionSink(spec.target, row["offset"])
    return PieceSink(spec, bucket, np.load(bounds_path), row["first_record"])


def shuffle_bucket(spec, bucket, memory, files):
    """`files`: the declared (table, bounds, stats) paths."""
    table_path, bounds_path, stats_path = files
    paths = spec.paths
    sections = [(paths.run(c), runfile.bucket_rows(paths.index(c), bucket)) for c in range(len(spec.chunks))]
    totals = expected_totals(sections)
    where = f"bucket {bucket}"
    row = tally.bucket_row(table_path, bucket)
    check_against_table(row, totals, where)
    passes = memory.shuffle_passes(*totals[:2])
    sink = open_sink(spec, row, bounds_path, bucket)
    output = BucketOutput(sink, spec.separator, where)
    if passes == 1:
        output.write_sorted(*load_whole(sections, *totals[:2]))
    progress = JobProgress(f"bucket {bucket}", totals[1])
    for which in range(passes if passes > 1 else 0):
        output.write_sorted(*load_pass(sections, spec, passes, which))
        progress.update(output.nbytes)
    sink.close()
    if (output.records, output.nbytes, output.key_sum) != totals:
        raise IntegrityError(
            f"{where}: wrote {output.records} records / {output.nbytes} bytes but the run "
            f"indexes list {totals[0]} / {totals[1]} (or the key checksums differ)"
        )
    report = jobs.report("shuffle", bucket=bucket, records=totals[0], bytes=totals[1], passes=passes,
                         memory_mb=memory.memory_mb)
    BucketStats(bucket, *totals, job=report, **sink.report()).save(stats_path)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--bucket", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--table", required=True, help="the bucket table (rule tally_buckets)")
    parser.add_argument("--bounds", required=True, help="where each output file starts in the order")
    parser.add_argument("--stats", required=True, help="what this job wrote, for gather")
    args = parser.parse_args(argv)
    jobs.inject_faults(bucket=args.bucket, memory_mb=args.memory_mb)
    files = (args.table, args.bounds, args.stats)
    shuffle_bucket(RunSpec.read(args.plan), args.bucket, MemoryModel(args.memory_mb), files)


if __name__ == "__main__":
    jobs.run(main)
