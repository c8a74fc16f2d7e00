"""Run files: what a split job hands to the shuffle jobs.

A split job writes ONE data file and ONE index. The data file is a sequence of
spills; a spill holds the record keys (uint64), in a run that deduplicates
their tags (uint64, snakeshuf.mixing.dedup), then the record lengths (uint32), then
the records, each grouped by key range in key range order and in input order
within a key range. The index is snakeshuf.stages.runindex's. The
lengths spare the shuffle job a scan of every byte for separators.
"""

import numpy as np
import pyarrow as pa
from pyarrow._compute import call_function

from snakeshuf.errors import IntegrityError
from snakeshuf.planning import keys as keylib
from snakeshuf.stages.integrity import checksum
from snakeshuf.stages.runindex import (
    CANDIDATES_OF,
    FILE,
    TAG_OFFSET,
    CHECKSUM,
    COLUMNS,
    DATA_OFFSET,
    KEY_OFFSET,
    KEY_RANGE,
    KEY_SUM,
    LENGTH_OFFSET,
    NBYTES,
    RECORDS,
)


def as_records(data, ends):
    """The records of `data` (the i-th ends at ends[i]) as an Arrow array, without copying."""
    return records_at(data, np.concatenate(([0], ends)).astype(np.int64, copy=False))


def records_at(data, offsets):
    """The records of `data` between consecutive `offsets` (int64, from 0) as an Arrow array."""
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def records_of_lengths(data, lengths, separator, where):
    """The records of a section (or of sections back to back) from their
    lengths, checked to end where `data` ends and each at the separator
    (if the records have one: None for table rows)."""
    offsets = np.empty(len(lengths) + 1, np.int64)
    offsets[0] = 0
    np.cumsum(lengths, out=offsets[1:])
    ends = offsets[1:]
    if offsets[-1] != len(data) or (separator is not None and not (data[ends - 1] == separator).all()):
        raise IntegrityError(f"{where}: record lengths do not match the records; a run file is corrupt")
    return records_at(data, offsets)


def take(records, order):
    """The Arrow `records` in the order `order`, as one buffer (Arrow's C++ gather)."""
    order = np.ascontiguousarray(order, dtype=np.int64)
    # from_buffers, not pa.array(): the latter costs ~50 MB of RSS on first use.
    indices = pa.Array.from_buffers(pa.int64(), len(order), [None, pa.py_buffer(order)])
    # The kernel behind Array.take, called without importing pyarrow.compute,
    # which would add ~70 ms of start-up to every job.
    taken = call_function("take", [records, indices])
    _, taken_offsets, taken_data = taken.buffers()
    nbytes = int(np.frombuffer(taken_offsets, np.int64)[len(taken)])
    return memoryview(taken_data)[:nbytes] if nbytes else memoryview(b"")


def release_taken():
    """Hand back to the system the pages Arrow's allocator kept after `take`
    results were freed: it keeps them for reuse, and a bucket job's slices
    of slightly different sizes add up (measured: a job of 8 key ranges at
    memory_mb=160 grew by 22 MB, to 146 MB; 123 MB when released after each)."""
    pa.default_memory_pool().release_unused()


def section_checksum(keys, lengths, data, tags=None):
    """One section's keys, tags (if any), record lengths and records, checksummed in that order."""
    keyed = checksum(keys) if tags is None else checksum(tags, checksum(keys))
    return checksum(data, checksum(lengths, keyed))


class RunWriter:
    """Appends spills to an open run file and keeps their index rows as uint64
    arrays (memory.INDEX_ROW_BYTES a row: the memory model counts them)."""

    def __init__(self, handle):
        self.handle = handle
        self.position = 0
        self.spills = 0
        self.rows = []

    def write_spill(self, spill, counts, byte_counts):
        """Write one Spill, its records already grouped by key range."""
        parts = [p for p in (spill.keys, spill.tags, spill.lengths, spill.data) if p is not None]
        starts = self.position + np.cumsum([0] + [p.nbytes if hasattr(p, "nbytes") else len(p) for p in parts])
        for part in parts:
            self.handle.write(part)
        self.position = int(starts[-1])
        tag_base = int(starts[1]) if spill.tags is not None else 0
        bases = [int(starts[0]), int(starts[-3]), int(starts[-2])]
        rows = spill_rows(spill, counts, byte_counts, bases, tag_base)
        rows[:, CANDIDATES_OF] = spill.candidates_of
        rows[:, FILE] = spill.file
        self.rows.append(rows)
        self.spills += 1

    def index(self):
        if not self.rows:
            return np.empty((0, len(COLUMNS)), np.uint64)
        rows = np.concatenate(self.rows)
        self.rows = []
        return rows[np.argsort(rows[:, KEY_RANGE], kind="stable")]


class Spill:
    """One spill's records, all of input file `file`: keys, tags (None in a run
    without), lengths (uint32) and bytes; candidates of source
    `candidates_of` - 1 (0: none)."""

    def __init__(self, keys, lengths, data, file=0, candidates_of=0, tags=None):
        self.keys, self.lengths, self.data, self.tags = keys, lengths, data, tags
        self.file, self.candidates_of = file, candidates_of


def spill_rows(spill, counts, byte_counts, bases, tag_base):
    """One index row per non-empty key range of a spill, whose keys, lengths and
    records start at the file positions `bases` (its tags at `tag_base`)."""
    keys, lengths, data, tags = spill.keys, spill.lengths, spill.data, spill.tags
    key_base, length_base, data_base = bases
    ranges = np.flatnonzero(counts)
    first_records = (np.cumsum(counts) - counts)[ranges]
    data_starts = (np.cumsum(byte_counts) - byte_counts)[ranges]
    sizes = byte_counts[ranges]
    rows = np.empty((len(ranges), len(COLUMNS)), np.uint64)
    rows[:, KEY_RANGE] = ranges
    rows[:, KEY_OFFSET] = key_base + first_records * 8
    rows[:, LENGTH_OFFSET] = length_base + first_records * 4
    rows[:, DATA_OFFSET] = data_base + data_starts
    rows[:, TAG_OFFSET] = tag_base + first_records * 8 if tags is not None else 0
    rows[:, RECORDS] = counts[ranges]
    rows[:, NBYTES] = sizes
    if len(ranges):
        with np.errstate(over="ignore"):
            rows[:, KEY_SUM] = np.add.reduceat(keylib.mix64(keys), first_records)
        rows[:, CHECKSUM] = [
            section_checksum(keys[first : first + n], lengths[first : first + n], data[start : start + size],
                             None if tags is None else tags[first : first + n])
            for first, n, start, size in zip(first_records, counts[ranges], data_starts, sizes)
        ]
    return rows


def read_keys_and_lengths(reader, row):
    """A section's keys and record lengths alone (checked when the section is
    read whole, with its records)."""
    records = int(row[RECORDS])
    keys, lengths = np.empty(records, np.uint64), np.empty(records, np.uint32)
    got = reader.read_into(int(row[KEY_OFFSET]), keys.view(np.uint8))
    got += reader.read_into(int(row[LENGTH_OFFSET]), lengths.view(np.uint8))
    if got != records * 12:
        raise IntegrityError(f"run file '{reader.path}' is truncated: a section of key range {row[KEY_RANGE]} is short")
    return keys, lengths


def read_tags(reader, row, tags=None):
    """A section's tags (None in a run without), read into `tags` when given."""
    if not row[TAG_OFFSET]:
        return None
    tags = np.empty(int(row[RECORDS]), np.uint64) if tags is None else tags
    if reader.read_into(int(row[TAG_OFFSET]), tags.view(np.uint8)) != tags.nbytes:
        raise IntegrityError(f"run file '{reader.path}' is truncated: a section of key range {row[KEY_RANGE]} is short")
    return tags


def read_section(reader, row, keys=None, lengths=None, data=None, tags=None):
    """Keys, record lengths, bytes and tags (None in a run without) of one
    section, checked against its index row; read into `keys`, `lengths`,
    `data` and `tags` when given (views of the right length)."""
    records, nbytes = int(row[RECORDS]), int(row[NBYTES])
    keys = np.empty(records, np.uint64) if keys is None else keys
    lengths = np.empty(records, np.uint32) if lengths is None else lengths
    data = np.empty(nbytes, np.uint8) if data is None else data
    got = reader.read_into(int(row[KEY_OFFSET]), keys.view(np.uint8))
    got += reader.read_into(int(row[LENGTH_OFFSET]), lengths.view(np.uint8))
    got += reader.read_into(int(row[DATA_OFFSET]), data)
    tags = read_tags(reader, row, tags)
    path = reader.path
    if got != records * 12 + nbytes:
        raise IntegrityError(f"run file '{path}' is truncated: a section of key range {row[KEY_RANGE]} is short")
    if section_checksum(keys, lengths, data, tags) != int(row[CHECKSUM]) or int(lengths.sum(dtype=np.uint64)) != nbytes:
        raise IntegrityError(
            f"run file '{path}' is corrupt: checksum mismatch in a section of key range {row[KEY_RANGE]}"
        )
    return keys, lengths, data, tags
