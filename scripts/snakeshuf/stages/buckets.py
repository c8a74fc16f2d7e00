"""What a bucket job wrote (BucketStats), and how gather checks it before
anything is published.

A bucket job writes its records, in key order, either into its region of
the one output file (one plain output: in place) or as pieces, one per output
file (and column) its records fall in (snakeshuf.stages.sinks). Gather then checks
that every bucket holds what the split jobs gave it (the bucket table), that
the pieces cut the one order exactly where each output file begins, and that
no region or piece changed since its job wrote it.
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import accumulate

import numpy as np

from snakeshuf.errors import IntegrityError
from snakeshuf.stages import tally
from snakeshuf.stages.directio import DirectReader, aligned_buffer
from snakeshuf.stages.integrity import checksum
from snakeshuf.stages.jobs import save_json

READ_BYTES = 4 << 20
# Regions are re-read by a few threads at once: the reads wait on the disk.
VERIFY_THREADS = 2


@dataclass(frozen=True)
class Region:
    """A bucket's bytes in the one output file, written in place."""

    offset: int
    checksum: int
    target_mtime_ns: int  # the file's mtime just after this job's last write


@dataclass(frozen=True)
class Piece:
    """A bucket's records of one output file (and column), in a file of its own."""

    path: str
    file: int  # which output file, in output order
    column: int
    first_record: int  # its first record's place in the one global order
    records: int
    file_bytes: int  # as stored (compressed, if the output is)
    checksum: int  # of the stored bytes
    mtime_ns: int
    # A compressed output's piece: the bytes of a member begun in an earlier
    # bucket (raw_head, uncompressed; head_ends_member says whether they end
    # it), whole members, then the uncompressed start of one a later bucket
    # ends (raw_tail). Gather compresses the raw parts into their members.
    raw_head: int = 0
    head_ends_member: bool = True
    raw_tail: int = 0


@dataclass(frozen=True)
class BucketStats:
    bucket: int
    records: int
    bytes: int
    key_sum: int
    region: Region = None
    pieces: tuple = ()
    job: dict = field(default_factory=dict)  # the job's report: time, peak memory, passes

    def save(self, path):
        save_json(path, asdict(self))

    @classmethod
    def load(cls, path):
        with open(path) as handle:
            data = json.load(handle)
        region = Region(**data.pop("region")) if data["region"] else None
        pieces = tuple(Piece(**p) for p in data.pop("pieces"))
        return cls(region=region, pieces=pieces, **{k: v for k, v in data.items() if k != "region"})


def file_checksum(path, offset, size):
    """The checksum of bytes [offset, offset + size) of a file, or None if it is shorter."""
    buffer = np.empty(READ_BYTES, np.uint8)
    running = done = 0
    with DirectReader(path, aligned_buffer(READ_BYTES)) as reader:
        while done < size:
            got = reader.read_into(offset + done, buffer[: min(len(buffer), size - done)])
            if not got:
                return None
            running = checksum(memoryview(buffer)[:got], running)
            done += got
    return running


def untouched_since_written(target, stats):
    """Whether nothing wrote to `target` after the last bucket job: each job
    records the file's mtime after its own last write, so the largest of them
    is the file's mtime unless something changed it later."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return False
    end = max(s.region.offset + s.bytes for s in stats)
    return info.st_mtime_ns <= max(s.region.target_mtime_ns for s in stats) and info.st_size >= end


def region_intact(target, stats):
    return file_checksum(target, stats.region.offset, stats.bytes) == stats.region.checksum


def piece_intact(piece, verify):
    """A piece file is as its job wrote it: the same size, and the same mtime
    (verify 'changed') or the same checksum."""
    try:
        info = os.stat(piece.path)
    except FileNotFoundError:
        return False
    if info.st_size != piece.file_bytes:
        return False
    if verify == "changed" and info.st_mtime_ns == piece.mtime_ns:
        return True
    return file_checksum(piece.path, 0, info.st_size) == piece.checksum


def damaged(stats, target, verify):
    """The buckets whose output (region or pieces) is missing or altered."""
    if stats[0].region is None:
        return [s.bucket for s in stats if not all(piece_intact(p, verify) for p in s.pieces)]
    if not os.path.exists(target):
        return [s.bucket for s in stats]
    if verify == "changed" and untouched_since_written(target, stats):
        return []
    with ThreadPoolExecutor(VERIFY_THREADS) as pool:
        intact = list(pool.map(lambda s: region_intact(target, s), stats))
    return [s.bucket for s, ok in zip(stats, intact) if not ok]


def check_against_table(stats, table):
    """Every bucket job wrote what the split jobs put in its bucket, where the
    bucket table placed it."""
    for bucket, s in enumerate(stats):
        row = table[bucket]
        offset = s.region.offset if s.region else int(row[tally.OFFSET])
        recorded = (s.bucket, s.records, s.bytes, s.key_sum, offset)
        planned = (bucket, *(int(row[c]) for c in (tally.RECORDS, tally.BYTES, tally.KEY_SUM, tally.OFFSET)))
        if recorded != planned:
            raise IntegrityError(
                f"bucket {bucket}: its job recorded (bucket, records, bytes, key checksum, offset) "
                f"{recorded} but the bucket table says {planned}; run the same command again"
            )


def check_cut(stats, bounds, columns):
    """Each output file (and column) is made of pieces that start at its first
    record, follow each other in bucket order without a gap or an overlap, and
    end where the next file begins."""
    by_file = {}
    for s in stats:  # in bucket order
        for piece in s.pieces:
            by_file.setdefault((piece.file, piece.column), []).append(piece)
    for file in range(len(bounds) - 1):
        for column in range(columns):
            pieces = by_file.get((file, column), [])
            ends = list(accumulate((p.records for p in pieces), initial=int(bounds[file])))
            if [p.first_record for p in pieces] != ends[:-1] or ends[-1] != int(bounds[file + 1]):
                raise IntegrityError(
                    f"output file {file} (column {column}): its pieces do not hold exactly records "
                    f"{int(bounds[file]):,} to {int(bounds[file + 1]):,} of the shuffled order; "
                    "nothing was published"
                )


def check_totals(stage_totals):
    """Every stage must account for the same records, bytes and key checksum."""
    (first_name, first), *rest = stage_totals.items()
    for name, totals in rest:
        for field_name in first.keys() & totals.keys():
            if first[field_name] != totals[field_name]:
                raise IntegrityError(
                    f"{field_name} differ between {first_name} ({first[field_name]}) and {name} "
                    f"({totals[field_name]}): records were lost or duplicated; the output was not written"
                )
