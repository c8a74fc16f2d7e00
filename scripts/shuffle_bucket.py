"""Rule shuffle_bucket: read one bucket's sections from every run file, order the
records by key and write them into the bucket's region of the output.

The buckets' sizes are known from the run indexes, so bucket j's records go
straight to their final place: the region of the shared file TARGET (the output
under a temporary name) that the bucket table gives, written with pwrite. No
bucket file is written and gather copies nothing; it verifies every
region against the stats this job records and renames TARGET into place.

Usage (from rules/shuffle.smk):
  shuffle_bucket.py --bucket J --buckets K --memory-mb M --target TARGET --stats JSON
                    [--separator BYTE] --table TABLE --chunks N
                    [--pieces-dir DIR [--codec gzip|zstd] [--lines-per-record N]]
The run files and indexes sit beside TABLE.
"""

import argparse
import os
import sys

import numpy as np

from snakeshuf import jobs
from snakeshuf import keys as keylib
from snakeshuf import layout, runfile, tally
from snakeshuf.directio import DirectReader, RegionWriter
from snakeshuf.integrity import IntegrityError, checksum
from snakeshuf.memory import OUTPUT_SLICE_BYTES, MemoryModel
from snakeshuf.pieces import PieceSink


class RegionSink:
    """The bucket's region of the target file (the one-plain-file layout)."""

    def __init__(self, target, offset):
        self.region = RegionWriter(target, offset)

    def room(self):
        return sys.maxsize

    def write(self, data, records):
        self.region.write(data)

    def close(self):
        self.region.close()


class BucketOutput:
    """Writes records in order into a sink (RegionSink or pieces.PieceSink),
    keeping count, size and checksum."""

    def __init__(self, sink):
        self.sink = sink
        self.records = self.nbytes = self.checksum = self.key_sum = 0

    def write(self, data, records):
        self.sink.write(data, records)
        self.checksum = checksum(data, self.checksum)
        self.nbytes += len(data)

    def write_sorted(self, keys, lengths, data, separator, where):
        """Write the records of `data` (of `lengths`) in the order of their `keys`."""
        records = runfile.records_of_lengths(data, lengths, separator, where)
        order = keylib.order_by_key(keys)
        step = max(1, len(keys) * OUTPUT_SLICE_BYTES // max(1, len(data)))
        lo = 0
        while lo < len(order):
            hi = min(len(order), lo + step, lo + self.sink.room())
            self.write(runfile.take(records, order[lo:hi]), hi - lo)
            lo = hi
        self.records += len(keys)
        self.key_sum = (self.key_sum + keylib.key_checksum(keys)) & keylib.MASK64


def load_whole(sections, records, nbytes):
    """All keys, record lengths and records of the bucket, read straight into three arrays."""
    keys, lengths, data = np.empty(records, np.uint64), np.empty(records, np.uint32), np.empty(nbytes, np.uint8)
    k = d = 0
    for run, run_rows in sections:
        with DirectReader(run) as reader:
            for row in run_rows:
                n, b = int(row[runfile.RECORDS]), int(row[runfile.NBYTES])
                runfile.read_section(reader, row, keys[k : k + n], lengths[k : k + n], data[d : d + b])
                k, d = k + n, d + b
    return keys, lengths, data


def load_part(sections, buckets, parts, part, separator, where):
    """The keys, lengths and records of one key sub-range of the bucket (several-pass mode)."""
    pieces = []
    for run, run_rows in sections:
        with DirectReader(run) as reader:
            for row in run_rows:
                keys, lengths, data = runfile.read_section(reader, row)
                chosen = np.flatnonzero(keylib.sub_range_of(keys, buckets, parts) == part)
                if len(chosen):
                    records = runfile.records_of_lengths(data, lengths, separator, where)
                    taken = np.frombuffer(runfile.take(records, chosen), np.uint8).copy()
                    pieces.append((keys[chosen], lengths[chosen], taken))
    if not pieces:
        return np.empty(0, np.uint64), np.empty(0, np.uint32), np.empty(0, np.uint8)
    return tuple(np.concatenate(column) for column in zip(*pieces))


def expected_totals(sections):
    rows = [rs for _, rs in sections if len(rs)]
    if not rows:
        return 0, 0, 0
    rows = np.concatenate(rows)
    key_sum = int(rows[:, runfile.KEY_SUM].sum(dtype=np.uint64))
    return int(rows[:, runfile.RECORDS].sum()), int(rows[:, runfile.NBYTES].sum()), key_sum


def check_against_table(row, records, nbytes, key_sum, where):
    if (row["records"], row["bytes"], row["key_sum"]) != (records, nbytes, key_sum):
        raise IntegrityError(
            f"{where}: the run indexes list {records} records / {nbytes} bytes but the bucket "
            f"table {row['records']} / {row['bytes']} (or the key checksums differ): an index "
            "changed after the table was made; delete the scratch directory and run again"
        )


def open_sink(table_path, bucket, row, target, pieces_dir, codec, lines_per_record, separator):
    if pieces_dir is None:
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        return RegionSink(target, row["offset"])
    os.makedirs(pieces_dir, exist_ok=True)
    bounds = tally.load_bounds(table_path)
    return PieceSink(pieces_dir, bucket, bounds, row["first_record"], codec, lines_per_record, separator)


def where_written(sink, row, target, checksum):
    """What gather needs to find and check this bucket's output."""
    if isinstance(sink, PieceSink):
        return {"pieces": sink.pieces}
    return {
        "offset": row["offset"], "checksum": checksum, "output_bytes": row["output_bytes"],
        "target_mtime_ns": os.stat(target).st_mtime_ns,
    }


def shuffle_bucket(
    runs, table_path, bucket, buckets, separator, memory, target, stats_path, pieces_dir, codec, lines_per_record
):
    sections = [(run, runfile.bucket_rows(index, bucket)) for run, index in runs]
    records, nbytes, key_sum = expected_totals(sections)
    where = f"bucket {bucket}"
    row = tally.bucket_row(table_path, bucket)
    check_against_table(row, records, nbytes, key_sum, where)
    passes = memory.shuffle_passes(records, nbytes)
    sink = open_sink(table_path, bucket, row, target, pieces_dir, codec, lines_per_record, separator)
    writer = BucketOutput(sink)
    if passes == 1:
        writer.write_sorted(*load_whole(sections, records, nbytes), separator, where)
    for part in range(passes if passes > 1 else 0):
        writer.write_sorted(*load_part(sections, buckets, passes, part, separator, where), separator, where)
    writer.sink.close()
    if (writer.records, writer.nbytes, writer.key_sum) != (records, nbytes, key_sum):
        raise IntegrityError(
            f"{where}: wrote {writer.records} records / {writer.nbytes} bytes but the run "
            f"indexes list {records} / {nbytes} (or the key checksums differ)"
        )
    stats = jobs.report(
        "shuffle", bucket=bucket, records=records, bytes=nbytes, key_sum=key_sum, passes=passes,
        memory_mb=memory.memory_mb, **where_written(writer.sink, row, target, writer.checksum),
    )
    jobs.save_json(stats_path, stats)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bucket", type=int, required=True)
    parser.add_argument("--buckets", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--separator", type=int, default=ord("\n"))
    parser.add_argument("--target", required=True)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--table", required=True, help="the bucket table (rule tally_buckets)")
    parser.add_argument("--chunks", type=int, required=True)
    parser.add_argument("--pieces-dir", help="write pieces here instead of a region of TARGET")
    parser.add_argument("--codec", choices=("gzip", "zstd"), help="compress the pieces")
    parser.add_argument("--lines-per-record", type=int, default=1, help="aligned inputs: lines per record")
    args = parser.parse_args(argv)
    jobs.inject_faults(bucket=args.bucket, memory_mb=args.memory_mb)
    runs = layout.run_pairs(os.path.dirname(args.table), args.chunks)
    shuffle_bucket(
        runs, args.table, args.bucket, args.buckets, args.separator, MemoryModel(args.memory_mb), args.target, args.stats,
        args.pieces_dir, args.codec, args.lines_per_record,
    )


if __name__ == "__main__":
    jobs.run(main)
