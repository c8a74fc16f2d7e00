"""Where a bucket job's sorted records go.

RegionSink: one plain output file, written in place: the bucket's records go
straight into its region of the output (under its temporary name).
PieceSink: any other layout (shards, splits, compressed or paired outputs):
the records are cut where output files begin and each run of them becomes a
piece file, which gather joins in bucket order. A compressed output is cut
into members (gzip) or frames (zstd) where the one order says (MemberCuts),
not where buckets end, so its bytes do not depend on memory: each bucket job
compresses the members within its bucket, all at once, and gather only the
few that span two buckets.

Both take whole records in order, say how many more the current output file
takes (room), and report what they wrote for gather to check
(snakeshuf.stages.buckets). A PieceSink drops the records after the last output
file's end (config keys 'head' and 'fraction').
"""

import os
import sys
from dataclasses import dataclass

import numpy as np

from snakeshuf.planning.memory import OUTPUT_SLICE_BYTES
from snakeshuf.records import codecs
from snakeshuf.records.codecs import MEMBER_RECORDS
from snakeshuf.records.lines import separator_ends
from snakeshuf.stages.buckets import Piece, Region
from snakeshuf.stages.directio import RegionWriter
from snakeshuf.stages.integrity import checksum
from snakeshuf.stages.jobs import PARTIAL
from snakeshuf.stages.runfile import as_records, take


class RegionSink:
    def __init__(self, target, offset):
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        self.target, self.offset = target, offset
        self.writer = RegionWriter(target, offset)
        self.checksum = 0

    past_the_end = False  # the one plain output takes every record

    def room(self):
        return sys.maxsize

    def write(self, data, lengths):
        self.writer.write(data)
        self.checksum = checksum(data, self.checksum)

    def close(self):
        self.writer.close()

    def report(self):
        return {"region": Region(self.offset, self.checksum, os.stat(self.target).st_mtime_ns)}


class ChecksumFile:
    """A file that keeps the checksum of the bytes written to it."""

    def __init__(self, path):
        self.handle = open(path, "wb")
        self.nbytes = self.checksum = 0

    def write(self, data):
        self.handle.write(data)
        self.checksum = checksum(data, self.checksum)
        self.nbytes += len(data)
        return len(data)

    def flush(self):
        self.handle.flush()

    # What Arrow's writers ask of a Python file (snakeshuf.records.parquet.PieceRows).
    @property
    def closed(self):
        return self.handle.closed

    def tell(self):
        return self.nbytes

    def close(self):
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()


def split_columns(data, columns, separator):
    """Records of `columns` lines each, as one block of lines per column."""
    if columns == 1:
        return [data]
    line_ends = separator_ends(np.frombuffer(data, np.uint8), separator)
    lines = as_records(np.frombuffer(data, np.uint8), line_ends)
    return [take(lines, np.arange(c, len(line_ends), columns)) for c in range(columns)]


class PieceWriter:
    """One piece file being written: a run of records of one output file (and
    column). For a compressed output, each member (MemberCuts) that begins
    and ends within the bucket is compressed here; the parts of one that
    begins in an earlier bucket or ends in a later one are kept raw, for
    gather to compress."""

    def __init__(self, path, where, spec, cuts):
        self.path, self.where, self.codec, self.cuts = path, where, spec.codec, cuts
        self.file = ChecksumFile(path + PARTIAL)
        self.content = spec.records.piece_content(self.file)  # the records' bytes, or a table of rows
        self.member = None  # the compressor of the member being written
        self.records = self.raw_head = self.raw_tail = 0
        self.head_ends_member = True

    @property
    def position(self):
        return self.where[2] + self.records

    def write(self, data, lengths):
        """Whole records (of `lengths`), all within one member (MemberCuts.room)."""
        if self.codec is codecs.PLAIN:
            self.content.write(data, lengths)
        else:
            self._write_member_part(data, len(lengths))
        self.records += len(lengths)

    def _write_member_part(self, data, records):
        start, end = self.cuts.member(self.position)
        if start < self.where[2]:  # begun in an earlier bucket
            self.file.write(data)
            self.raw_head += len(data)
            self.head_ends_member = self.position + records == end
        elif end > self.cuts.bucket_end:  # ended in a later bucket
            self.file.write(data)
            self.raw_tail += len(data)
        else:
            self.member = self.member or codecs.compressing(self.file, self.codec)
            view = memoryview(data)
            for lo in range(0, len(view), OUTPUT_SLICE_BYTES):  # a compressor's output is as long as its input
                self.member.write(view[lo : lo + OUTPUT_SLICE_BYTES])
            if self.position + records == end:
                self.member.close()
                self.member = None

    def close(self):
        """The Piece written, or None (and no file) if it holds no record."""
        self.content.close()
        self.file.close()
        if not self.records:
            os.remove(self.path + PARTIAL)
            return None
        os.replace(self.path + PARTIAL, self.path)
        mtime = os.stat(self.path).st_mtime_ns
        stored = (self.records, self.file.nbytes, self.file.checksum, mtime)
        return Piece(self.path, *self.where, *stored, self.raw_head, self.head_ends_member, self.raw_tail)


@dataclass(frozen=True)
class MemberCuts:
    """Where the members of a compressed output file begin: every
    MEMBER_RECORDS records of the one order, and where the file begins."""

    file_start: int  # the file's first record in the one order
    file_end: int
    bucket_end: int  # one past the bucket's last record

    def member(self, position):
        """[start, end) in the one order of the member that holds record `position`."""
        start = max(self.file_start, position - position % MEMBER_RECORDS)
        return start, min(self.file_end, position - position % MEMBER_RECORDS + MEMBER_RECORDS)

    def room(self, position):
        """Records from `position` to the end of its member."""
        return self.member(position)[1] - position


class PieceSink:
    """Writes a bucket's records, in order, into one piece per output file (and
    column) they belong to. `bounds[f]` is the place of output file f's first
    record in the global order; the bucket's first record is `first_record`."""

    def __init__(self, spec, bucket, bounds, records_at):
        """`records_at`: (the bucket's first record in the one order, its records)."""
        os.makedirs(spec.paths.pieces, exist_ok=True)
        self.spec, self.bucket = spec, bucket
        self.bounds = np.asarray(bounds, np.int64)
        self.position, records = records_at
        self.bucket_end = self.position + records
        self.file = None  # the output file being written, once open
        self.writers = []
        self.pieces = []

    @property
    def past_the_end(self):
        """Whether the records from here on are after the last output file's (not published: head, fraction)."""
        return self.position >= self.bounds[-1]

    def room(self):
        """Records that still go into the current output file (and, compressed, its member)."""
        if self.past_the_end:
            return sys.maxsize
        self._open_if_needed()
        in_file = int(self.bounds[self.file + 1]) - self.position
        if self.spec.codec is codecs.PLAIN:
            return in_file
        return min(in_file, self.cuts.room(self.position))

    def write(self, data, lengths):
        """Whole records (of `lengths`), all within room()."""
        if self.past_the_end:
            self.position += len(lengths)
            return
        self._open_if_needed()
        for writer, column_data in zip(self.writers, split_columns(data, self.spec.width, self.spec.separator)):
            writer.write(column_data, lengths)
        self.position += len(lengths)
        if self.position == self.bounds[self.file + 1]:
            self.close()

    def _open_if_needed(self):
        if self.file is None:
            self.file = int(np.searchsorted(self.bounds, self.position, side="right")) - 1
            paths, f = self.spec.paths, self.file
            self.cuts = MemberCuts(int(self.bounds[f]), int(self.bounds[f + 1]), self.bucket_end)
            self.writers = [
                PieceWriter(paths.piece(f, c, self.bucket), (f, c, self.position), self.spec, self.cuts)
                for c in range(self.spec.width)
            ]

    def close(self):
        self.pieces += [piece for writer in self.writers if (piece := writer.close())]
        self.file, self.writers = None, []

    def report(self):
        return {"pieces": tuple(self.pieces)}
