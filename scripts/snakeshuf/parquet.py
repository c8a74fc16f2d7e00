"""Parquet inputs and outputs, whose records are table rows (snakeshuf.rows).

A split job reads a Parquet file in record batches and encodes each row as a
record keyed by its row number, so the order depends on the rows alone, not
on the file's row groups, pages, compression or dictionaries. A bucket job
decodes its rows in order and writes each piece as an Arrow IPC file, with
each row's encoded length beside it; gather writes every output file with
the inputs' schema and metadata, cutting row groups by those lengths, so
that an output's bytes never depend on the memory budget.
"""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from snakeshuf import rows
from snakeshuf.errors import InputError
from snakeshuf.memory import REAL_MIB
from snakeshuf.records import Batch

LENGTHS = "__snakeshuf_row_bytes"  # each row's encoded length, in pieces only
READ_BUFFER_BYTES = 1 << 20  # pages are read through a buffer this size, not whole column chunks
# A batch whose rows encode to more than a split job's block is read in halves.
ENCODED_PER_STORED = 4  # a first guess of encoded bytes per byte stored, for a batch's rows


class RowBatch(Batch):
    """A batch of encoded rows; `offset` is its first row's number in the file."""

    @property
    def positions(self):
        return self.offset + np.arange(len(self.ends), dtype=np.int64)


def opened(path):
    """The ParquetFile at `path`; a file that is not one is refused, naming it."""
    try:
        return pq.ParquetFile(path, buffer_size=READ_BUFFER_BYTES, pre_buffer=False)
    except (OSError, pa.ArrowException) as error:
        raise InputError(f"input '{path}' starts like a Parquet file but cannot be read as one ({error}); "
                         "it may be truncated: fetch or write it again") from None


def schema_of(path):
    return opened(path).schema_arrow


class RowReader:
    """Reads the rows of Parquet inputs as RowBatches of encoded rows of at
    most `block_bytes` and `max_records` rows."""

    def __init__(self, block_bytes, max_records):
        self.block_bytes, self.max_records = block_bytes, max_records

    def batches(self, f, start, end):
        """The rows of input `f` (a whole file: a Parquet file is one segment)."""
        parquet = opened(f.path)
        first = 0
        try:
            for batch in parquet.iter_batches(batch_size=self.batch_rows(parquet), use_threads=False):
                for part in self.encoded(batch, f.path):
                    yield RowBatch(*part, first)
                    first += len(part[1])
        except (OSError, pa.ArrowException) as error:
            raise InputError(f"input '{f.path}' is not a valid Parquet file ({error}); "
                             "it may be truncated or corrupt: fetch or write it again") from None

    def batch_rows(self, parquet):
        meta = parquet.metadata
        stored = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        per_row = max(1, ENCODED_PER_STORED * stored // max(1, meta.num_rows))
        return int(max(1, min(self.max_records, self.block_bytes // per_row)))

    def encoded(self, batch, path):
        """(data, ends) of the batch's rows, in parts of at most block_bytes."""
        data, ends = rows.encode(batch)
        if len(data) <= self.block_bytes:
            yield data, ends
        elif batch.num_rows > 1:
            half = batch.num_rows // 2
            yield from self.encoded(batch.slice(0, half), path)
            yield from self.encoded(batch.slice(half), path)
        else:
            raise InputError(f"input '{path}': a row of {len(data):,} bytes (encoded) is longer than a split job's "
                             f"buffer of {self.block_bytes:,} bytes; raise memory_mb")


def check_inputs(files):
    """Every input a readable Parquet file with the first one's schema."""
    first = schema_of(files[0].path)
    for f in files[1:]:
        other = schema_of(f.path)
        if not other.equals(first, check_metadata=False):
            raise InputError(f"input '{f.path}' has another schema than '{files[0].path}': "
                             f"{schema_difference(first, other)}; shuffle tables of one schema together")


def schema_difference(first, other):
    names = [field.name for field in first]
    for field in first:
        if field.name not in other.names:
            return f"it has no column '{field.name}'"
        theirs = other.field(field.name)
        if not theirs.equals(field):
            return f"column '{field.name}' is {theirs.type}{'' if theirs.nullable else ' not null'} there, " \
                   f"{field.type}{'' if field.nullable else ' not null'} in the first"
    extra = [name for name in other.names if name not in names]
    if extra:
        return f"it has another column, '{extra[0]}'"
    return f"its columns are in another order ({', '.join(other.names)})"


def with_lengths(schema):
    return schema.append(pa.field(LENGTHS, pa.uint32(), nullable=False))


class PieceRows:
    """A piece file of rows: the decoded rows as an Arrow IPC file, each with its encoded length."""

    def __init__(self, handle, schema):
        self.schema = schema
        self.writer = pa.ipc.new_file(handle, with_lengths(schema))

    def write(self, data, lengths):
        lengths = np.asarray(lengths, np.int64)
        ends = np.cumsum(lengths)
        batch = rows.decode(self.schema, np.frombuffer(data, np.uint8), ends)
        self.writer.write_batch(pa.RecordBatch.from_arrays([*batch.columns, pa.array(lengths, pa.uint32())],
                                                           schema=with_lengths(self.schema)))

    def close(self):
        self.writer.close()


class RowGroups:
    """Writes rows into a Parquet file in row groups of `row_group_rows` rows,
    or fewer where their encoded bytes reach `row_group_mb`: cut by the rows
    alone, so the file's bytes do not depend on the pieces' sizes."""

    def __init__(self, path, schema, settings):
        self.settings, self.schema = settings, schema
        compression = None if settings.compression == "none" else settings.compression
        self.writer = pq.ParquetWriter(path, schema, compression=compression)
        self.pending, self.rows, self.bytes = [], 0, 0

    def add(self, batch):
        """Add rows; a row group ends after the row that makes it row_group_rows
        rows long or row_group_mb MiB (encoded) or more."""
        lengths = np.asarray(batch.column(LENGTHS), np.int64)
        batch = batch.drop_columns([LENGTHS])
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
        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending, self.schema), row_group_size=self.rows)
        self.pending, self.rows, self.bytes = [], 0, 0

    def close(self):
        self.flush()
        self.writer.close()


def join_pieces(path, schema, settings, pieces):
    """Write the output file `path` from `pieces` (buckets.Piece, in order)."""
    out = RowGroups(path, schema, settings)
    for piece in pieces:
        with pa.OSFile(piece.path, "rb") as source:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                out.add(reader.get_batch(i))
    out.close()
