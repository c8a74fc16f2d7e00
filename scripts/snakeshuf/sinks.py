"""Where a bucket job's sorted records go.

RegionSink: one plain output file, written in place: the bucket's records go
straight into its region of the output (under its temporary name).
PieceSink: any other layout (shards, splits, compressed or paired outputs):
the records are cut where output files begin and each run of them becomes a
piece file (a whole gzip member or zstd frame when the output is compressed),
which gather joins in bucket order; compression thus runs in every bucket job
at once.

Both take whole records in order, say how many more the current output file
takes (room), and report what they wrote for gather to check
(snakeshuf.buckets).
"""

import os
import sys

import numpy as np

from snakeshuf import codecs
from snakeshuf.buckets import Piece, Region
from snakeshuf.directio import RegionWriter
from snakeshuf.integrity import checksum
from snakeshuf.jobs import PARTIAL
from snakeshuf.memory import OUTPUT_SLICE_BYTES
from snakeshuf.records import separator_ends
from snakeshuf.runfile import as_records, take


class RegionSink:
    def __init__(self, target, offset):
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        self.target, self.offset = target, offset
        self.writer = RegionWriter(target, offset)
        self.checksum = 0

    def room(self):
        return sys.maxsize

    def write(self, data, records):
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
    """One piece file being written: a run of records of one output file (and column)."""

    def __init__(self, path, file, column, first_record, codec):
        self.path, self.where = path, (file, column, first_record)
        self.file = ChecksumFile(path + PARTIAL)
        self.writer = codecs.compressing(self.file, codec) or self.file
        self.records = 0

    def write(self, data, records):
        view = memoryview(data)
        for lo in range(0, len(view), OUTPUT_SLICE_BYTES):  # a long record in pieces: a compressor's output is as long
            self.writer.write(view[lo : lo + OUTPUT_SLICE_BYTES])
        self.records += records

    def close(self):
        """The Piece written, or None (and no file) if it holds no record."""
        if self.writer is not self.file:
            self.writer.close()
        self.file.close()
        if not self.records:
            os.remove(self.path + PARTIAL)
            return None
        os.replace(self.path + PARTIAL, self.path)
        mtime = os.stat(self.path).st_mtime_ns
        return Piece(self.path, *self.where, self.records, self.file.nbytes, self.file.checksum, mtime)


class PieceSink:
    """Writes a bucket's records, in order, into one piece per output file (and
    column) they belong to. `bounds[f]` is the place of output file f's first
    record in the global order; the bucket's first record is `first_record`."""

    def __init__(self, spec, bucket, bounds, first_record):
        os.makedirs(spec.paths.pieces, exist_ok=True)
        self.spec, self.bucket = spec, bucket
        self.bounds = np.asarray(bounds, np.int64)
        self.position = first_record
        self.file = None  # the output file being written, once open
        self.writers = []
        self.pieces = []

    def room(self):
        """Records that still go into the current output file."""
        self._open_if_needed()
        return int(self.bounds[self.file + 1]) - self.position

    def write(self, data, records):
        """`records` whole records, all within room()."""
        self._open_if_needed()
        for writer, column_data in zip(self.writers, split_columns(data, self.spec.width, self.spec.separator)):
            writer.write(column_data, records)
        self.position += records
        if self.position == self.bounds[self.file + 1]:
            self.close()

    def _open_if_needed(self):
        if self.file is None:
            self.file = int(np.searchsorted(self.bounds, self.position, side="right")) - 1
            paths = self.spec.paths
            self.writers = [
                PieceWriter(paths.piece(self.file, c, self.bucket), self.file, c, self.position, self.spec.codec)
                for c in range(self.spec.width)
            ]

    def close(self):
        self.pieces += [piece for writer in self.writers if (piece := writer.close())]
        self.file, self.writers = None, []

    def report(self):
        return {"pieces": tuple(self.pieces)}
