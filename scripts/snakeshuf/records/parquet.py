"""Parquet inputs and outputs, whose records are table rows (snakeshuf.records.rows).

A split job reads a Parquet file in record batches and encodes each row as a
record keyed by its row number, so the order depends on the rows alone, not
on the file's row groups, pages, compression or dictionaries. A bucket job
decodes its rows in order and writes each piece as an Arrow IPC file, with
each row's encoded length beside it; gather writes every output file with
the inputs' schema and metadata, cutting row groups by those lengths, so
that an output's bytes never depend on the memory budget
(snakeshuf.records.rowgroups).
"""

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from snakeshuf.errors import InputError, IntegrityError, RecordTooLarge
from snakeshuf.planning.memory import REAL_MIB
from snakeshuf.records import rows, thrift
from snakeshuf.records.lines import Batch
from snakeshuf.sources import objects
from snakeshuf.sources.reading import open_input, read_at, reads_at_once, reported

LENGTHS = "__snakeshuf_row_bytes"  # each row's encoded length, in pieces only
READ_BUFFER_BYTES = 1 << 20  # pages are read through a buffer this size, not whole column chunks
# INT96 timestamps (Spark, Hive, Impala) read as nanoseconds wrap outside
# 1677-2262 (9999-12-31 sentinels are common); as microseconds they do not,
# and a value with nanoseconds (Impala's) is refused, not rounded (Int96Check).
INT96_UNIT = "us"
# Rows encode to up to about this many times their bytes as Parquet says them
# (int32 token lists: 9 bytes an item for 4). Arrow batches are read at
# 1/READS_PER_BLOCK of a block's share of that, so that encoding one (~10x
# its bytes) stays small beside the block. A batch whose rows encode to more
# than a block anyway is encoded in halves.
ROW_ENCODING_FACTOR = 4
READS_PER_BLOCK = 16


class RowBatch(Batch):
    """A batch of encoded rows; `offset` is its first row's number in the file."""

    @property
    def positions(self):
        return self.offset + np.arange(len(self.ends), dtype=np.int64)


def opened(path):
    """The ParquetFile at `path`; a file that is not one is refused, naming it."""
    try:
        with reported(path):
            return pq.ParquetFile(open_input(path), buffer_size=READ_BUFFER_BYTES, pre_buffer=False,
                                  coerce_int96_timestamp_unit=INT96_UNIT)
    except (OSError, pa.ArrowException) as error:
        raise InputError(f"input '{path}' starts like a Parquet file but cannot be read as one ({error}); "
                         "it may be truncated: fetch or write it again") from None


def schema_of(path):
    """The schema rows are read with, and the outputs' (kept_schema)."""
    return kept_schema(opened(path).schema_arrow)


def kept_schema(schema):
    """`schema` as outputs keep it: pandas' row labels of a RangeIndex are
    positions, which a shuffle does not keep (pandas then numbers the rows of
    each output from 0)."""
    pandas = (schema.metadata or {}).get(b"pandas")
    if pandas:
        described = json.loads(pandas)
        described["index_columns"] = [c for c in described.get("index_columns", []) if not is_range(c)]
        schema = schema.with_metadata({**schema.metadata, b"pandas": json.dumps(described).encode()})
    return schema


def is_range(index):
    return isinstance(index, dict) and index.get("kind") == "range"


class RowReader:
    """Reads the rows of Parquet inputs as RowBatches of encoded rows of at
    most half `block_bytes` and `max_records` rows. Arrow batches are read small
    (READS_PER_BLOCK to a block, by the row group's average row) and encoded
    one at a time into the block: encoding takes up to ~10x a batch's bytes
    (lists of small integers), and wide rows cost per value as well."""

    def __init__(self, block_bytes, max_records, longest_row):
        self.block_bytes, self.max_records, self.longest_row = block_bytes, max_records, longest_row
        self.spill_bytes = block_bytes // 2  # the pages being read take the other half (check_readable)
        self.buffer = np.empty(self.spill_bytes, np.uint8)  # one for every file, as lines have

    def batches(self, f, start, end):
        """The rows of input `f` (a whole file: a Parquet file is one segment)."""
        with reported(f.path):
            yield from self.rows(f)

    def rows(self, f):
        parquet = opened(f.path)
        int96 = Int96Check(f.path, parquet)
        block = Block(self.buffer, self.max_records)
        try:
            for group, cost in enumerate(row_group_costs(f.path, parquet.metadata)):
                size = self.read_rows(cost)
                arrow = parquet.iter_batches(batch_size=size, row_groups=[group], use_threads=False)
                for batch in int96.checked(arrow, size, group, block.rows_read):
                    for data, ends in self.encoded(batch, f.path):
                        yield from block.add(data, ends)
            yield from block.flush()
        except (OSError, pa.ArrowException) as error:
            if objects.from_the_store(error):
                raise  # not the file's fault (reported)
            raise InputError(f"input '{f.path}' is not a valid Parquet file ({error}); "
                             "it may be truncated or corrupt: fetch or write it again") from None

    def read_rows(self, cost):
        """Rows per Arrow batch read (ROW_ENCODING_FACTOR, READS_PER_BLOCK)."""
        rows = self.block_bytes // (READS_PER_BLOCK * ROW_ENCODING_FACTOR * cost.row_bytes)
        return int(max(1, min(self.max_records, rows)))

    def encoded(self, batch, path):
        """(data, ends) of the batch's rows, in parts of at most spill_bytes."""
        data, ends = rows.encode(batch)
        longest = int(np.diff(ends, prepend=0).max(initial=0))
        if longest > self.longest_row:
            raise RecordTooLarge(f"input '{path}': a row of {longest:,} bytes (encoded)",
                                 longest * self.block_bytes // self.longest_row, self.longest_row)
        if len(data) <= self.spill_bytes:
            yield data, ends
        else:
            half = batch.num_rows // 2
            yield from self.encoded(batch.slice(0, half), path)
            yield from self.encoded(batch.slice(half), path)


class Block:
    """Encoded rows gathered into RowBatches that fill at most `buffer` and
    hold `max_records` rows, the buffer reused for each (as lines are read): a
    split job writes a spill per batch, so batches stay as large as its memory
    allows, and it has copied a batch's rows before it asks for the next."""

    def __init__(self, buffer, max_records):
        self.buffer, self.max_records = buffer, max_records
        self.ends, self.held, self.first, self.rows_read = [], 0, 0, 0

    def add(self, data, ends):
        """Take one encoded batch; yield the RowBatch it does not fit beside."""
        if self.ends and (self.held + len(data) > len(self.buffer) or
                          self.rows_read - self.first + len(ends) > self.max_records):
            yield from self.flush()
        self.buffer[self.held : self.held + len(data)] = data
        self.ends.append(ends + self.held)
        self.held += len(data)
        self.rows_read += len(ends)

    def flush(self):
        if self.ends:
            ends, held = np.concatenate(self.ends), self.held
            self.ends, self.held = [], 0
            yield RowBatch(self.buffer[:held], ends, self.first)
            self.first += len(ends)


class Int96Check:
    """Refuses INT96 timestamps that microseconds (INT96_UNIT) would round: the
    file read again as nanoseconds, batch by batch, its top-level INT96
    columns compared by place (two columns may share a name); a value that
    nanoseconds cannot hold (outside 1677-2262) has none. (INT96 inside a
    list or struct is not checked.)"""

    def __init__(self, path, parquet):
        self.path = path
        names = {c.path for c in parquet.schema if c.physical_type == "INT96" and c.path == c.name}
        self.places = [i for i, f in enumerate(parquet.schema_arrow) if f.name in names and pa.types.is_timestamp(f.type)]
        self.exact = pq.ParquetFile(open_input(path), coerce_int96_timestamp_unit="ns") if self.places else None

    def checked(self, batches, size, group, first):
        """`batches` (of row group `group`, from row `first`), each checked."""
        if not self.places:
            yield from batches
            return
        exact = self.exact.iter_batches(batch_size=size, row_groups=[group], use_threads=False)
        for batch, nanoseconds in zip(batches, exact):
            self.check(batch, nanoseconds, first)
            first += batch.num_rows
            yield batch

    def check(self, batch, nanoseconds, first):
        for place in self.places:
            us = integers(batch.column(place))
            ns = integers(nanoseconds.column(place))
            rounded = (ns // 1000 == us) & (ns % 1000 != 0)
            if rounded.any():
                row = first + int(np.argmax(rounded)) + 1
                raise InputError(
                    f"input '{self.path}': row {row} of column '{batch.schema.field(place).name}' is an INT96 "
                    "timestamp with nanoseconds, which snakeshuf keeps in microseconds (as Spark writes them) and "
                    "would round; write the file with INT64 timestamps (pyarrow: use_deprecated_int96_timestamps="
                    "False; Spark: spark.sql.parquet.outputTimestampType=TIMESTAMP_MICROS) or drop the nanoseconds"
                )


def integers(timestamps):
    """A timestamp array's int64 values, 0 where null (never floats, which would round them)."""
    return timestamps.cast(pa.int64()).fill_null(0).to_numpy()


def check_inputs(files, memory):
    """Every input a readable Parquet file with the first one's schema, of
    types rows are encoded from, whose every row group a split job can read
    in `memory` (a MemoryModel); each file's footer is read once. Returns a
    note naming the first input whose metadata differ from the first's, if any."""
    first, note = None, None
    for f in files:
        parquet = opened(f.path)
        check_types(f.path, parquet.schema)
        check_readable(f.path, parquet.metadata, memory)
        schema = kept_schema(parquet.schema_arrow)
        if first is None:
            first = schema
        elif not schema.equals(first, check_metadata=False):
            raise InputError(f"input '{f.path}' has another schema than '{files[0].path}': "
                             f"{schema_difference(first, schema)}; shuffle tables of one schema together")
        elif note is None and not schema.equals(first, check_metadata=True):
            note = (f"input '{f.path}' has other metadata than '{files[0].path}' ({metadata_difference(first, schema)}); "
                    "the outputs keep the first's")
    return note


def metadata_difference(first, other):
    """Which key of the schema's, or which column's, metadata differ first."""
    ours, theirs = first.metadata or {}, other.metadata or {}
    for key in [*ours, *(k for k in theirs if k not in ours)]:
        if ours.get(key) != theirs.get(key):
            return f"key '{key.decode(errors='replace')}'"
    name = next(a.name for a, b in zip(first, other) if not a.equals(b, check_metadata=True))
    return f"column '{name}'"


# Parquet logical types that Arrow reads as something else and would write back without them.
UNREAD_TYPES = {"INTERVAL": "an INTERVAL (Arrow reads its 12 bytes raw, and would write them back as binary)"}


def check_types(path, stored):
    """Refuse columns (`stored`: the file's Parquet schema) whose type would not survive a read and a write."""
    for i in range(len(stored)):
        column = stored.column(i)
        if column.converted_type in UNREAD_TYPES:
            raise InputError(f"input '{path}': column '{column.path}' is {UNREAD_TYPES[column.converted_type]}; "
                             "cast it first (e.g. to a string or a number of seconds)")
    try:
        rows.check_supported(stored.to_arrow_schema())
    except rows.Unsupported as error:
        raise InputError(f"input '{path}': {error}; cast that column first") from None


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


class RowIdentities:
    """What makes rows duplicates: all their values, or one column's (dedup: {field: ...})."""

    format = "parquet"

    def __init__(self, field, schema, path):
        self.schema = schema
        self.column = None if field is None else column_index(field, schema, path)

    def of(self, record):
        """The identity of an encoded row: itself, or its column's value (None where null)."""
        return record if self.column is None else rows.field_value(self.schema, self.column, record)


def column_index(field, schema, path):
    """The index of a column given by name or by number from 1."""
    if isinstance(field, int) and 1 <= field <= len(schema.names):
        return field - 1
    if isinstance(field, str) and schema.names.count(field) > 1:
        raise InputError(f"config key 'dedup': the tables (such as '{path}') have {schema.names.count(field)} "
                         f"columns named {field!r}: give the column's number from 1 instead")
    if isinstance(field, str) and field in schema.names:
        return schema.names.index(field)
    raise InputError(f"config key 'dedup': the tables (such as '{path}') have no column {field!r}; their columns "
                     f"are {', '.join(schema.names)}: name one, or give its number from 1")


def piece_schema(schema):
    """A piece's schema: the rows', dictionaries as their values (an IPC file
    holds one dictionary per column, and each batch a bucket job decodes has
    its own), and last their encoded lengths (found by place: a table may use
    any name)."""
    fields = [field.with_type(field.type.value_type) if pa.types.is_dictionary(field.type) else field
              for field in schema]
    return pa.schema(fields, schema.metadata).append(pa.field(LENGTHS, pa.uint32(), nullable=False))


class PieceRows:
    """A piece file of rows: the decoded rows as an Arrow IPC file, each with its encoded length."""

    def __init__(self, handle, schema):
        self.schema, self.pieces = schema, piece_schema(schema)
        self.writer = pa.ipc.new_file(handle, self.pieces)

    def write(self, data, lengths):
        """Write the rows (encoded, of `lengths`) decoded; a row that does not decode stops the job."""
        lengths = np.asarray(lengths, np.int64)
        data = np.frombuffer(data, np.uint8)
        try:
            batch = rows.decode(self.schema, data, np.cumsum(lengths))
        except rows.DamagedRow as error:
            raise IntegrityError(f"rows that a bucket job read do not decode ({error}): a run file is damaged") from None
        columns = [column.cast(field.type) for column, field in zip(batch.columns, self.pieces)]
        self.writer.write_batch(pa.RecordBatch.from_arrays([*columns, pa.array(lengths, pa.uint32())],
                                                           schema=self.pieces))
        del batch
        pa.default_memory_pool().release_unused()  # Arrow's allocator would keep each slice's pages

    def close(self):
        self.writer.close()


# --- what reading a row group takes -----------------------------------------------------
# A reader holds, for each column, the page it is decoding (compressed and
# decompressed) and the column's dictionary. Page sizes are in each page's
# header, a Thrift struct before its bytes, which Arrow does not expose:
# PageHeaders reads just the headers (a few bytes per page). The split jobs
# walk them again, to size their batches: milliseconds a file.

PAGE_TYPE, UNCOMPRESSED_SIZE, COMPRESSED_SIZE, DICTIONARY_HEADER = 1, 2, 3, 7
DICTIONARY_ENTRIES = 1
DICTIONARY_PAGE = 2
HEADER_READ_BYTES = 256  # a page header with statistics can be longer: read on as needed


class PageHeaders:
    """Reads the page headers of a file, at any offset, through `read(offset,
    size)` (positional: several threads may read at once)."""

    def __init__(self, read):
        self.read = read

    def page(self, offset, end):
        """Page(type, uncompressed size, compressed size, header length, a
        dictionary's entries) of the page at `offset`, in a column chunk that
        ends at `end`; ValueError for a header that cannot be one."""
        read = [offset]

        def more(n):
            data = self.read(read[0], max(n, HEADER_READ_BYTES))
            read[0] += len(data)
            return data

        reader = thrift.Reader(more=more, limit=end - offset)
        header = reader.struct()
        kind, dictionary = header.get(DICTIONARY_HEADER, (thrift.STRUCT, {}))
        if kind != thrift.STRUCT:
            raise ValueError("a page header's dictionary header is not a struct")
        page = Page(integer(header, PAGE_TYPE), integer(header, UNCOMPRESSED_SIZE), integer(header, COMPRESSED_SIZE),
                    reader.pos, integer(dictionary, DICTIONARY_ENTRIES))
        if min(page.size, page.stored, page.entries) < 0:
            raise ValueError("a page header gives a negative size")
        return page


def integer(struct, field):
    """A decoded struct's integer field (0 if absent); ValueError if it is something else."""
    kind, value = struct.get(field, (thrift.I32, 0))
    if kind not in thrift.INTEGERS:
        raise ValueError(f"field {field} of a page header is not an integer")
    return value


@dataclass(frozen=True)
class Page:
    kind: int
    size: int
    stored: int
    header: int
    entries: int  # a dictionary page's


@dataclass(frozen=True)
class RowGroupCost:
    """What reading a row group takes: `need`, the bytes a reader holds at most
    (per column, its dictionary and its largest page, compressed and not),
    and `row_bytes`, what a row holds once read (a dictionary's values taken
    at their average size: a value repeated through a dictionary is read
    whole in every row)."""

    need: int
    row_bytes: int


def column_cost(headers, chunk, rows):
    """(bytes held to read the column chunk, bytes a row of it holds): see RowGroupCost."""
    start = min(o for o in (chunk.dictionary_page_offset, chunk.data_page_offset) if o is not None and o > 0)
    end, largest, dictionary, entry = start + chunk.total_compressed_size, 0, 0, 0
    while start < end:
        page = headers.page(start, end)
        if page.kind == DICTIONARY_PAGE:
            dictionary, entry = page.size, page.size / max(1, page.entries)
        largest = max(largest, page.size + page.stored)
        start += page.header + page.stored
    return dictionary + largest, max(entry, chunk.total_uncompressed_size / rows)


def row_group_costs(path, meta):
    """The RowGroupCost of each row group of a Parquet file; InputError if
    its pages cannot be walked. Column chunks are walked at once, as many as
    the input is worth (reads_at_once): each page's header says where the
    next one is, so a chunk's pages are one read after another."""
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    chunks = [(i, c) for i, group in enumerate(groups) for c in range(group.num_columns if group.num_rows else 0)]
    with reported(path), open_input(path) as handle, ThreadPoolExecutor(reads_at_once(path)) as pool:
        headers = PageHeaders(lambda offset, size: read_at(handle, offset, size))

        def cost(chunk):
            i, c = chunk
            try:
                return column_cost(headers, groups[i].column(c), groups[i].num_rows)
            except (EOFError, ValueError, OSError) as error:
                if objects.from_the_store(error):
                    raise  # not the file's fault (reported)
                raise InputError(f"input '{path}': row group {i} cannot be read ({error}); it may be truncated or "
                                 "corrupt: fetch or write it again") from None

        columns = list(pool.map(cost, chunks))
    need, row_bytes = [0] * len(groups), [0.0] * len(groups)
    for (i, _), (held, row) in zip(chunks, columns):
        need[i] += held
        row_bytes[i] += row
    return [RowGroupCost(n, int(r) + 1) for n, r in zip(need, row_bytes)]


def check_readable(path, meta, memory):
    """Refuse a file (`meta`: its footer) with a row group whose pages a split job cannot read within its budget."""
    for i, cost in enumerate(row_group_costs(path, meta)):
        if cost.need > memory.page_bytes:
            raise InputError(
                f"input '{path}': row group {i} holds pages that take {cost.need / REAL_MIB:,.0f} MiB to read (a "
                f"page is read whole), more than a split job has with memory_mb={memory.memory_mb}; set memory_mb "
                f"to at least {memory.memory_for_pages(cost.need)}, or write the file with smaller pages (pyarrow: "
                "write_batch_size and data_page_size; row groups of any size are fine)"
            )
