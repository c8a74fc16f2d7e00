"""Rule gather: concatenate the buckets in order into the output, verifying each
bucket on the way and the totals against the input, and write the summary.

Usage (from rules/gather.smk):
  gather.py --out OUTPUT --summary JSON --seed S [--separator BYTE]
            --inputs FILE... --indexes INDEX... --buckets DATA STATS [DATA STATS ...]
"""

import argparse
import json
import os

import numpy as np

from snakeshuf import jobs, runfile
from snakeshuf.integrity import MASK64, IntegrityError, word_sum

COPY_BYTES = 8 << 20


def copy_verified(source, stats, out, buffer):
    """Append bucket `source` to `out`; its size, checksum and record count must
    match what its shuffle job recorded."""
    checksum = size = 0
    with open(source, "rb", buffering=0) as handle:
        while got := handle.readinto(buffer):
            piece = memoryview(buffer)[:got]
            out.write(piece)
            checksum = (checksum + word_sum(piece, size)) & MASK64
            size += got
    if (size, checksum) != (stats["bytes"], stats["checksum"]):
        raise IntegrityError(
            f"bucket file '{source}' does not match what its shuffle job recorded "
            f"({size} bytes, checksum {checksum}; expected {stats['bytes']} bytes, checksum "
            f"{stats['checksum']}): it was changed or corrupted after it was written; "
            "delete it and run the same command again"
        )


def load_json(path):
    with open(path) as handle:
        return json.load(handle)


def input_totals(paths, separator):
    """Bytes the output must have: the inputs plus a separator for each input
    whose last record lacks one."""
    total = 0
    for path in paths:
        size = os.path.getsize(path)
        total += size
        if size:
            with open(path, "rb") as handle:
                handle.seek(size - 1)
                total += handle.read(1)[0] != separator
    return total


def split_totals(indexes):
    records = nbytes = key_sum = 0
    for path in indexes:
        index = runfile.load_index(path)
        records += int(index[:, runfile.RECORDS].sum())
        nbytes += int(index[:, runfile.NBYTES].sum())
        key_sum += int(index[:, runfile.KEY_SUM].sum(dtype=np.uint64))
    return records, nbytes, key_sum & MASK64


def check_totals(stage_totals):
    """Every stage must account for the same records, bytes and key checksum."""
    (first_name, first), *rest = stage_totals.items()
    for name, totals in rest:
        for field in first.keys() & totals.keys():
            if first[field] != totals[field]:
                raise IntegrityError(
                    f"{field} differ between {first_name} ({first[field]}) and {name} "
                    f"({totals[field]}): records were lost or duplicated; the output was not written"
                )


def gather(out_path, summary_path, seed, separator, inputs, indexes, buckets):
    stats = [load_json(path) for _, path in buckets]
    buffer = np.empty(COPY_BYTES, np.uint8)
    with jobs.atomic_write(out_path) as out:
        for (data, _), bucket_stats in zip(buckets, stats):
            copy_verified(data, bucket_stats, out, buffer)
        output_records = sum(s["records"] for s in stats)
        split_records, split_bytes, split_keys = split_totals(indexes)
        check_totals(
            {
                "the inputs": {"bytes": input_totals(inputs, separator)},
                "the split jobs": {"records": split_records, "bytes": split_bytes, "key_sum": split_keys},
                "the buckets": {
                    "records": sum(s["records"] for s in stats),
                    "bytes": sum(s["bytes"] for s in stats),
                    "key_sum": sum(s["key_sum"] for s in stats) & MASK64,
                },
                "the output": {"bytes": out.tell()},
            }
        )
    summary = jobs.report(
        "gather", output=out_path, records=output_records, bytes=split_bytes, seed=seed,
        buckets=len(buckets), inputs=len(inputs), key_sum=split_keys,
    )
    jobs.save_json(summary_path, summary)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--summary", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--separator", type=int, default=ord("\n"))
    parser.add_argument("--inputs", nargs="*", default=[])
    parser.add_argument("--indexes", nargs="+", required=True)
    parser.add_argument("--buckets", nargs="+", required=True)
    args = parser.parse_args(argv)
    buckets = list(zip(args.buckets[0::2], args.buckets[1::2]))
    gather(args.out, args.summary, args.seed, args.separator, args.inputs, args.indexes, buckets)


if __name__ == "__main__":
    jobs.run(main)
