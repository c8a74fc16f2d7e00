"""Parquet output files, written by gather from the bucket jobs' pieces.

Rows are cut into row groups by the rows alone (RowGroups), so a file's
bytes never depend on the pieces. pyarrow encodes a file's row groups one
after another on one core, which made gather most of a run; so each row
group is encoded on its own, as a small Parquet file, on several threads
(Encoder), and the files' row groups are joined in order under one footer
(JoinedFile): its offsets moved by where each lands, so that the bytes are
those one writer would have written.
"""

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from snakeshuf.errors import IntegrityError
from snakeshuf.planning.memory import REAL_MIB
from snakeshuf.records import thrift

MAGIC = b"PAR1"
# Tables of more columns than this are written by one writer (OneWriter).
MAX_JOINED_COLUMNS = 256

# Parquet's footer (FileMetaData) fields this module reads or moves.
FILE_NUM_ROWS, FILE_ROW_GROUPS = 3, 4
GROUP_COLUMNS, GROUP_FILE_OFFSET, GROUP_ORDINAL = 1, 5, 7
CHUNK_FILE_OFFSET, CHUNK_META = 2, 3
META_OFFSETS = (9, 10, 11)  # of the data, index and dictionary pages
# A page index and a bloom filter hold offsets of their own, inside the pages'
# bytes; the encoder writes neither (their fields are refused, not moved).
CHUNK_INDEXES, META_BLOOM_FILTER = (4, 6), 14


class Encoder:
    """Encodes row groups on `threads` threads, one at a time, or as many as
    `room` bytes of them (formats.encoding_room) while the rows of the next
    are read."""

    def __init__(self, threads, room, settings):
        self.pool, self.room = ThreadPoolExecutor(threads), room
        self.compression = None if settings.compression == "none" else settings.compression
        self.held = 0  # bytes of the row groups being encoded or not yet written
        self.most = 0  # row groups held at once, at most (in the job's report)

    def __enter__(self):
        return self

    def __exit__(self, failed, *exc):
        self.pool.shutdown(cancel_futures=failed is not None)

    def encode(self, group):
        """One row group as a Parquet file's bytes (a pa.Buffer)."""
        sink = pa.BufferOutputStream()
        pq.write_table(group, sink, compression=self.compression, row_group_size=max(1, group.num_rows),
                       write_page_index=False)
        return sink.getvalue()


class RowGroups:
    """Writes rows into a Parquet file in row groups of `row_group_rows` rows,
    or fewer where their encoded bytes reach `row_group_mb`: cut by the rows
    alone, so the file's bytes do not depend on the pieces' sizes."""

    def __init__(self, path, schema, settings, encoder):
        self.settings, self.schema = settings, schema
        wide = leaf_columns(schema) > MAX_JOINED_COLUMNS
        self.out = OneWriter(path, schema, encoder) if wide else EncodedApart(path, schema, encoder)
        self.pending, self.rows, self.bytes = [], 0, 0

    def add(self, batch):
        """Add rows; a row group ends after the row that makes it row_group_rows
        rows long or row_group_mb MiB (encoded) or more."""
        lengths = np.asarray(batch.column(batch.num_columns - 1), np.int64)
        batch = batch.select(range(batch.num_columns - 1))
        limit = self.settings.row_group_mb * REAL_MIB
        while batch.num_rows:
            sizes = self.bytes + np.cumsum(lengths)
            last = min(int(np.searchsorted(sizes, limit, side="left")), self.settings.row_group_rows - self.rows - 1)
            take = min(last + 1, batch.num_rows)
            self.pending.append(batch.slice(0, take))
            self.rows, self.bytes = self.rows + take, int(sizes[take - 1])
            batch, lengths = batch.slice(take), lengths[take:]
            if take == last + 1:
                self.flush()

    def flush(self):
        """Write the pending rows as one row group."""
        if self.pending:
            size = self.bytes
            self.out.write(self.taken_group(), size)  # held by no name here: out lets it go once encoded

    def taken_group(self):
        """The pending rows made one chunk (Parquet cuts pages where chunks
        end, which would follow the buckets' pieces); the pieces' rows let go."""
        pending, self.pending, self.rows, self.bytes = self.pending, [], 0, 0
        return as_written(pa.Table.from_batches(pending).combine_chunks(), self.schema)

    def close(self):
        self.flush()
        self.out.close()


class EncodedApart:
    """Row groups encoded on the encoder's threads as small files, as many at
    once as its room allows while the next are read, and joined in order."""

    def __init__(self, path, schema, encoder):
        self.file, self.encoder = JoinedFile(path, schema, encoder), encoder
        self.encoding = deque()  # (future, its bytes), in the file's order

    def write(self, group, size):
        """Encode a row group (`size`: its rows' encoded bytes), then write the
        oldest ones until the encoder has room to read on."""
        self.encoding.append((self.encoder.pool.submit(self.encoder.encode, group), size))
        del group  # the worker's, until it is encoded
        self.encoder.held += size
        self.encoder.most = max(self.encoder.most, len(self.encoding))
        while self.encoding and self.encoder.held > self.encoder.room:
            self.write_oldest()

    def write_oldest(self):
        future, size = self.encoding.popleft()
        self.file.append(future.result())
        self.encoder.held -= size
        pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed row groups otherwise

    def close(self):
        while self.encoding:
            self.write_oldest()
        self.file.close()


class OneWriter:
    """Row groups written in turn by one pyarrow writer (the same bytes), for
    tables of many columns: joining footers costs Python time per column
    chunk, more than encoding at once saves (2,000 columns: 3.4 s against 1.6 s)."""

    def __init__(self, path, schema, encoder):
        self.path, self.encoder = path, encoder
        self.writer = pq.ParquetWriter(path, schema, compression=encoder.compression, write_page_index=False)

    def write(self, group, size):
        self.writer.write_table(group, row_group_size=max(1, group.num_rows))
        self.encoder.most = max(self.encoder.most, 1)
        del group
        pa.default_memory_pool().release_unused()

    def close(self):
        self.writer.close()
        with open(self.path, "rb") as handle:
            os.fsync(handle.fileno())  # on disk before it is renamed into place, as a text output is


def leaf_columns(schema):
    """The column chunks a row group of `schema` has (a struct's or a map's fields each one)."""

    def leaves(kind):
        if pa.types.is_struct(kind):
            return sum(leaves(kind.field(i).type) for i in range(kind.num_fields))
        if pa.types.is_map(kind):
            return leaves(kind.key_type) + leaves(kind.item_type)
        if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
            return leaves(kind.value_type)
        return 1

    return sum(leaves(field.type) for field in schema)


class JoinedFile:
    """A Parquet file made of the row groups of small Parquet files, in order.
    A row group's pages do not say where they are; only the footer does, so
    the pages are copied as they are and the footer's offsets moved."""

    def __init__(self, path, schema, encoder):
        self.handle = open(path, "wb")
        self.handle.write(MAGIC)
        self.schema, self.encoder, self.groups, self.rows = schema, encoder, [], 0

    def append(self, encoded):
        footer, pages = footer_and_pages(encoded)
        shift = self.handle.tell() - len(MAGIC)
        self.handle.write(pages)
        for group in footer[FILE_ROW_GROUPS][1][1]:  # kept encoded: a file may have thousands of columns
            self.groups.append(thrift.encoded(moved(group, shift, len(self.groups))))
        self.rows += footer[FILE_NUM_ROWS][1]

    def close(self):
        footer, _ = footer_and_pages(self.encoder.encode(self.schema.empty_table()))
        footer[FILE_NUM_ROWS] = (thrift.I64, self.rows)
        footer[FILE_ROW_GROUPS] = (thrift.LIST, (thrift.STRUCT, self.groups))
        ending = thrift.encoded(footer)
        self.handle.write(ending + len(ending).to_bytes(4, "little") + MAGIC)
        self.handle.flush()
        os.fsync(self.handle.fileno())  # on disk before it is renamed into place, as a text output is
        self.handle.close()


def footer_and_pages(encoded):
    """(the decoded footer, the bytes of the row groups) of a Parquet file's bytes."""
    data = memoryview(encoded)
    length = int.from_bytes(data[-8:-4], "little")
    footer = thrift.Reader(data[-8 - length : -8]).struct()
    return footer, data[len(MAGIC) : -8 - length]


def moved(group, shift, ordinal):
    """A footer's row group whose pages are `shift` bytes further into the file, as row group `ordinal`."""
    group = shifted(group, (GROUP_FILE_OFFSET,), shift)
    if GROUP_ORDINAL in group:
        group[GROUP_ORDINAL] = (thrift.I16, ordinal)
    kind, chunks = group[GROUP_COLUMNS][1]
    group[GROUP_COLUMNS] = (thrift.LIST, (kind, [moved_chunk(chunk, shift) for chunk in chunks]))
    return group


def moved_chunk(chunk, shift):
    if any(field in chunk for field in CHUNK_INDEXES) or META_BLOOM_FILTER in chunk[CHUNK_META][1]:
        raise IntegrityError("a row group was encoded with a page index or a bloom filter, whose offsets "
                             "cannot be moved; nothing is published")
    chunk = shifted(chunk, (CHUNK_FILE_OFFSET,), shift)
    meta = shifted(chunk[CHUNK_META][1], META_OFFSETS, shift)
    chunk[CHUNK_META] = (thrift.STRUCT, meta)
    return chunk


def shifted(struct, fields, shift):
    """A copy of `struct` with each of `fields` it has (offsets into the file)
    moved by `shift`; 0 is no offset (a file starts with its magic bytes),
    which Arrow writes for ColumnChunk's deprecated file_offset."""
    struct = dict(struct)
    for field in fields:
        kind, offset = struct.get(field, (None, 0))
        if offset:
            struct[field] = (kind, offset + shift)
    return struct


def as_written(group, schema):
    """A row group of pieces' rows with the output's `schema`: each dictionary
    column encoded from the group's own values, so its dictionary depends on
    those rows alone."""
    return pa.Table.from_arrays([column.cast(field.type) for column, field in zip(group.columns, schema)], schema=schema)


def join_pieces(path, schema, settings, pieces, encoder):
    """Write the output file `path` from `pieces` (buckets.Piece, in order),
    and check that it holds their rows."""
    out = RowGroups(path, schema, settings, encoder)
    for piece in pieces:
        with pa.OSFile(piece.path, "rb") as source:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                out.add(reader.get_batch(i))
    out.close()
    written, expected = pq.ParquetFile(path).metadata.num_rows, sum(piece.records for piece in pieces)
    if written != expected:
        raise IntegrityError(f"'{path}' holds {written} rows, but its pieces {expected}; nothing is published")
