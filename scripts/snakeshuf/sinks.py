"""Bucket output for layouts other than one plain file: a bucket job cuts its
sorted records where output files begin and writes each run of records as a
piece file (a whole gzip member or zstd frame when the output is compressed).
gather joins the pieces of each output file in bucket order with kernel-side
copies; compression thus runs in every bucket job at once.
"""

import gzip
import os

import numpy as np
import zstandard

from snakeshuf.integrity import checksum
from snakeshuf.parts import GZIP_LEVEL, ZSTD_LEVEL
from snakeshuf.records import separator_ends
from snakeshuf.runfile import as_records, take

PIECE = "{part}-{column}-{bucket}.piece"
COPY_BYTES = 1 << 30


def piece_path(pieces_dir, part, column, bucket):
    return os.path.join(pieces_dir, PIECE.format(part=part, column=column, bucket=bucket))


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


def compressing(sink, codec):
    """A writer that compresses into `sink` as one member/frame (or not at all)."""
    if codec == "gzip":
        return gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
    if codec == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).stream_writer(sink, closefd=False)
    return None


def split_columns(data, columns, separator):
    """Records of `columns` lines each, as one block of lines per column."""
    if columns == 1:
        return [data]
    line_ends = separator_ends(np.frombuffer(data, np.uint8), separator)
    lines = as_records(np.frombuffer(data, np.uint8), line_ends)
    return [take(lines, np.arange(c, len(line_ends), columns)) for c in range(columns)]


class Piece:
    """One piece file being written: a run of records of one output file (and column)."""

    def __init__(self, pieces_dir, where, bucket, codec):
        """`where`: (output file, column, global index of the piece's first record)."""
        part, column, first_record = where
        self.path = piece_path(pieces_dir, part, column, bucket)
        self.file = ChecksumFile(self.path + ".partial")
        self.writer = compressing(self.file, codec) or self.file
        self.stats = {
            "part": part, "column": column, "bucket": bucket, "path": self.path,
            "first_record": first_record, "records": 0, "bytes": 0,
        }

    def write(self, data, records):
        self.writer.write(data)
        self.stats["records"] += records
        self.stats["bytes"] += len(data)

    def close(self, keep=True):
        if self.writer is not self.file:
            self.writer.close()
        self.file.close()
        if not keep:
            os.remove(self.path + ".partial")
            return None
        os.replace(self.path + ".partial", self.path)
        self.stats.update(
            file_bytes=self.file.nbytes, file_checksum=self.file.checksum,
            mtime_ns=os.stat(self.path).st_mtime_ns,
        )
        return self.stats


class PieceSink:
    """Writes a bucket's records, in order, into one piece per output file (and
    column, for aligned inputs) they belong to. `bounds[p]` is the global
    index of output file p's first record; the bucket's first record is
    `first_record`."""

    def __init__(self, pieces_dir, bucket, bounds, first_record, codec, columns=1, separator=10):
        self.pieces_dir, self.bucket, self.codec = pieces_dir, bucket, codec
        self.columns, self.separator = columns, separator
        self.bounds = np.asarray(bounds, np.int64)
        self.position = first_record
        self.part = None
        self.open = []
        self.pieces = []

    def room(self):
        """Records that still go into the current output file."""
        self._open_if_needed()
        return int(self.bounds[self.part + 1]) - self.position

    def write(self, data, records):
        """`records` whole records, all within room()."""
        self._open_if_needed()
        for piece, column_data in zip(self.open, split_columns(data, self.columns, self.separator)):
            piece.write(column_data, records)
        self.position += records
        if self.position == self.bounds[self.part + 1]:
            self._close_pieces()

    def _open_if_needed(self):
        if self.part is None:
            self.part = int(np.searchsorted(self.bounds, self.position, side="right")) - 1
            self.open = [
                Piece(self.pieces_dir, (self.part, c, self.position), self.bucket, self.codec)
                for c in range(self.columns)
            ]

    def _close_pieces(self, keep=True):
        self.pieces += [stats for piece in self.open if (stats := piece.close(keep))]
        self.open, self.part = [], None

    def close(self):
        if self.part is not None:
            # Opened to ask room() but never written: nothing to keep.
            self._close_pieces(keep=self.open[0].stats["records"] > 0)
