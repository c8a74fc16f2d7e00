"""A run file's index: one row per non-empty section of the run file (a .npy
array of uint64, sorted by key range, then spill), which lets a shuffle job
find and verify its sections without reading anyone else's. Apart from
snakeshuf.stages.runfile so that the jobs that read only indexes (the tally, gather)
do not import Arrow.
"""

import bisect
import os

import numpy as np

from snakeshuf.errors import IntegrityError
from snakeshuf.planning import keys as keylib

COLUMNS = ("key_range", "key_offset", "length_offset", "data_offset", "records", "nbytes", "checksum", "key_sum",
           "candidates_of", "tag_offset", "file")
(KEY_RANGE, KEY_OFFSET, LENGTH_OFFSET, DATA_OFFSET, RECORDS, NBYTES, CHECKSUM, KEY_SUM, CANDIDATES_OF, TAG_OFFSET,
 FILE) = range(len(COLUMNS))
# TAG_OFFSET: where the records' tags are (snakeshuf.mixing.dedup), 0 in a run without.
# FILE: the input file (of aligned files, the group's first) of the section's records.
# CANDIDATES_OF: 0 for a section of copies that are all published, else 1 +
# the source whose candidates for an extra copy it holds (snakeshuf.mixing.weights).


def range_rows(index_path, lo, hi):
    """The rows of key ranges lo .. hi - 1 in an index file (sorted by key
    range), found by a binary search that reads one 8-byte cell per probe. Not np.searchsorted
    on a memory map: that copies the key range column, and even a bisect over a
    map faults in (and keeps resident) ~300 KB per probe through readahead,
    gigabytes per bucket job over the hundreds of indexes of a 10 TB plan."""
    try:
        with open(index_path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            shape, _, _ = (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(handle)
            base, row_bytes, fd = handle.tell(), shape[1] * 8, handle.fileno()

            def key_range_at(row):
                return int.from_bytes(os.pread(fd, 8, base + row * row_bytes + KEY_RANGE * 8), "little")

            first = bisect.bisect_left(range(shape[0]), lo, key=key_range_at)
            end = bisect.bisect_left(range(shape[0]), hi, lo=first, key=key_range_at)
            data = os.pread(fd, (end - first) * row_bytes, base + first * row_bytes)
    except (OSError, ValueError) as error:
        raise IntegrityError(f"index '{index_path}' cannot be read: {error}") from None
    if len(data) != (end - first) * row_bytes:
        raise IntegrityError(f"index '{index_path}' is truncated")
    return np.frombuffer(data, np.uint64).reshape(end - first, shape[1]).copy()


def load_index(path):
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise IntegrityError(f"index '{path}' cannot be read: {error}") from None


def bucket_sections(spec, bucket):
    """For each key range of the bucket, in order: its sections, as (run file,
    index rows) for each run file that has any (views of one read per index)."""
    paths, first = spec.paths, bucket * spec.parts
    wanted = np.arange(first, first + spec.parts + 1, dtype=np.uint64)
    parts = [[] for _ in range(spec.parts)]
    for chunk in range(len(spec.chunks)):
        rows = range_rows(paths.index(chunk), first, first + spec.parts)
        bounds = np.searchsorted(rows[:, KEY_RANGE], wanted)  # rows are sorted by key range
        for part, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            if hi > lo:
                parts[part].append((paths.run(chunk), rows[lo:hi]))
    return parts


def add_totals(totals, key_range, keys, lengths):
    """Add records of `keys` and `lengths` to row `key_range` of a (key ranges,
    3) table of records, bytes and key checksums (what tally.add_rows adds up)."""
    with np.errstate(over="ignore"):
        totals[key_range, 0] += np.uint64(len(keys))
        totals[key_range, 1] += np.uint64(lengths.sum(dtype=np.uint64))
        totals[key_range, 2] += np.uint64(keylib.mix64(keys).sum(dtype=np.uint64))
