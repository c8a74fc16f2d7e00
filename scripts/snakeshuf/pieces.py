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

from snakeshuf.integrity import MASK64, word_sum
from snakeshuf.parts import GZIP_LEVEL, ZSTD_LEVEL

PIECE = "{part}-{bucket}.piece"
COPY_BYTES = 1 << 30


def piece_path(pieces_dir, part, bucket):
    return os.path.join(pieces_dir, PIECE.format(part=part, bucket=bucket))


class ChecksumFile:
    """A file that keeps the word sum of the bytes written to it."""

    def __init__(self, path):
        self.handle = open(path, "wb")
        self.nbytes = self.checksum = 0

    def write(self, data):
        self.handle.write(data)
        self.checksum = (self.checksum + word_sum(data, self.nbytes)) & MASK64
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


class PieceSink:
    """Writes a bucket's records, in order, into one piece per output file
    they belong to. `bounds[p]` is the global index of output file p's first
    record; the bucket's first record is `first_record`."""

    def __init__(self, pieces_dir, bucket, bounds, first_record, codec):
        self.pieces_dir, self.bucket, self.codec = pieces_dir, bucket, codec
        self.bounds = np.asarray(bounds, np.int64)
        self.position = first_record
        self.part = None
        self.pieces = []

    def room(self):
        """Records that still go into the current output file."""
        self._open_if_needed()
        return int(self.bounds[self.part + 1]) - self.position

    def write(self, data, records):
        """`records` whole records, all within room()."""
        self._open_if_needed()
        (self.writer or self.file).write(data)
        self.piece["records"] += records
        self.piece["bytes"] += len(data)
        self.position += records
        if self.position == self.bounds[self.part + 1]:
            self._close_piece()

    def _open_if_needed(self):
        if self.part is not None:
            return
        self.part = int(np.searchsorted(self.bounds, self.position, side="right")) - 1
        path = piece_path(self.pieces_dir, self.part, self.bucket)
        self.file = ChecksumFile(path + ".partial")
        self.writer = compressing(self.file, self.codec)
        self.piece = {"part": self.part, "bucket": self.bucket, "path": path, "records": 0, "bytes": 0}

    def _close_piece(self):
        if self.writer is not None:
            self.writer.close()
        self.file.close()
        os.replace(self.piece["path"] + ".partial", self.piece["path"])
        self.piece.update(
            file_bytes=self.file.nbytes, file_checksum=self.file.checksum,
            mtime_ns=os.stat(self.piece["path"]).st_mtime_ns,
        )
        self.pieces.append(self.piece)
        self.part = None

    def close(self):
        if self.part is None:
            return
        if self.piece["records"]:
            self._close_piece()
        else:  # opened to ask room(), never written
            (self.writer or self.file).close()
            os.remove(self.piece["path"] + ".partial")
