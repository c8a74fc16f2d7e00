"""Parquet output files from row groups encoded apart, on several threads,
and joined under one footer (snakeshuf.records.rowgroups): the bytes are
those of one pyarrow writer writing the same row groups in turn, whatever the
threads and the memory they may take; the Thrift codec that moves the footer's
offsets gives back every footer pyarrow writes, byte for byte."""

import io
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from snakeshuf.errors import IntegrityError
from snakeshuf.records import thrift
from snakeshuf.records.formats import ParquetOutput
from snakeshuf.records.parquet import LENGTHS, piece_schema
from snakeshuf.records.rowgroups import Encoder, RowGroups, as_written
from tables import seeded_table, tables

DERANDOMIZE = not os.environ.get("SNAKESHUF_RANDOM")


def footer_bytes(data):
    length = int.from_bytes(data[-8:-4], "little")
    return data[-8 - length : -8]


@settings(max_examples=40, deadline=None, derandomize=DERANDOMIZE)
@given(tables(max_rows=30), st.integers(1, 20), st.sampled_from(["zstd", "snappy", "none"]), st.booleans(),
       st.booleans())
def test_every_footer_pyarrow_writes_decodes_and_encodes_to_its_own_bytes(table, row_group, compression,
                                                                           dictionary, statistics):
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=row_group, compression=compression, use_dictionary=dictionary,
                   write_statistics=statistics)
    footer = footer_bytes(out.getvalue())
    assert thrift.encoded(thrift.Reader(footer).struct()) == footer


def test_long_lists_far_field_ids_and_negative_numbers_round_trip():
    """What pyarrow's footers above may lack: a list of 15 or more, a field id
    more than 15 above the last, a negative and a large integer, booleans,
    bytes, doubles, an empty map and a map, nested structs."""
    struct = {
        1: (thrift.I32, -7), 2: (thrift.LIST, (thrift.I64, list(range(-20, 20)))), 40: (thrift.TRUE, None),
        41: (thrift.FALSE, None), 42: (thrift.BYTE, 255), 43: (thrift.DOUBLE, b"\x00\x01\x02\x03\x04\x05\x06\x07"),
        44: (thrift.I64, -(2**63)), 45: (thrift.I64, 2**63 - 1), 46: (thrift.BINARY, b"\0\n" * 100),
        47: (thrift.MAP, (0, 0, [])),  # an empty map says no types 48: (thrift.MAP, (thrift.BINARY, thrift.I16, [(b"a", 3)])),
        49: (thrift.LIST, (thrift.TRUE, [1, 2, 1])), 200: (thrift.STRUCT, {3: (thrift.STRUCT, {})}),
    }
    data = thrift.encoded(struct)
    assert thrift.Reader(data).struct() == struct
    assert thrift.encoded(thrift.Reader(data).struct()) == data
    with pytest.raises(EOFError):
        thrift.Reader(data[:-3]).struct()


def pieces_of(table, cuts):
    """`table` as batches cut at `cuts`, each row's encoded length beside it (as pieces give them)."""
    table = table.cast(piece_schema(table.schema).remove(len(table.schema)))
    lengths = np.random.default_rng(len(table)).integers(1, 40_000, len(table))
    edges = [0, *sorted(c for c in cuts if 0 < c < len(table)), len(table)]
    for lo, hi in zip(edges, edges[1:]):
        columns = [c.combine_chunks() for c in table.slice(lo, hi - lo).columns]
        yield pa.RecordBatch.from_arrays([*columns, pa.array(lengths[lo:hi], pa.uint32())],
                                         names=[*table.column_names, LENGTHS])


def written_one_after_another(path, schema, groups, compression):
    """What gather wrote before row groups were encoded apart: one writer, one row group at a time."""
    writer = pq.ParquetWriter(path, schema, compression=None if compression == "none" else compression)
    for group in groups:
        writer.write_table(as_written(group, schema), row_group_size=group.num_rows)
    writer.close()


def joined(path, schema, batches, output, threads, room):
    with Encoder(threads, room, output) as encoder:
        out = RowGroups(path, schema, output, encoder)
        for batch in batches:
            out.add(batch)
        out.close()
        assert encoder.held == 0


@settings(max_examples=30, deadline=None, derandomize=DERANDOMIZE)
@given(st.integers(0, 5), st.integers(0, 2**32 - 1), st.integers(0, 400), st.integers(1, 90),
       st.lists(st.integers(0, 400), max_size=6), st.integers(1, 4), st.sampled_from([0, 50_000, 10**9]),
       st.sampled_from(["zstd", "snappy", "none"]))
@example(schema_seed=0, seed=0, rows=0, row_group_rows=5, cuts=[], threads=2, room=0, compression="zstd")
def test_row_groups_encoded_apart_and_joined_are_the_bytes_one_writer_writes(
        tmp_path_factory, schema_seed, seed, rows, row_group_rows, cuts, threads, room, compression):
    """Random schemas (lists, structs, maps, dictionaries' values, nulls),
    row groups cut by rows (row_group_rows) and by bytes (row groups of up to
    1 MiB of rows of up to 40,000 bytes), pieces cut anywhere, 1 to 4 threads,
    room for one row group at a time or for all; and an empty file."""
    tmp_path = tmp_path_factory.mktemp("joined")
    table = seeded_table(schema_seed, seed, rows)
    if schema_seed == 5:  # a dictionary column, whose dictionary each row group makes from its own rows
        table = table.append_column("lang", pa.array(["en", "de", None, "fr"] * (rows // 4) + ["en"] * (rows % 4))
                                    .dictionary_encode())
    output = ParquetOutput(row_group_rows, 1, compression)
    batches = list(pieces_of(table, cuts))
    joined(tmp_path / "joined.parquet", table.schema, batches, output, threads, room)
    groups = cut_as_row_groups(batches, output)
    written_one_after_another(tmp_path / "one.parquet", table.schema, groups, compression)
    assert (tmp_path / "joined.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()
    back = pq.read_table(tmp_path / "joined.parquet")
    assert back.num_rows == rows and pq.ParquetFile(tmp_path / "joined.parquet").num_row_groups == len(groups)
    assert back.to_pylist() == table.to_pylist()


def cut_as_row_groups(batches, output):
    """The row groups RowGroups cuts, found here the plain way: row by row."""
    rows = pa.Table.from_batches(batches).combine_chunks() if batches else None
    if rows is None:
        return []
    lengths = rows.column(LENGTHS).to_numpy()
    rows = rows.drop_columns([LENGTHS])
    groups, start, size = [], 0, 0
    for i, length in enumerate(lengths):
        size += int(length)
        if i + 1 - start == output.row_group_rows or size >= output.row_group_mb << 20:
            groups.append(rows.slice(start, i + 1 - start))
            start, size = i + 1, 0
    if start < len(lengths):
        groups.append(rows.slice(start))
    return groups


def test_row_groups_with_offsets_inside_their_pages_are_refused_not_joined_wrong(tmp_path, monkeypatch):
    """A page index holds the offsets of its pages, which joining would not
    move: if the encoder ever wrote one, the join stops instead."""
    table = seeded_table(2, 0, 50)
    output = ParquetOutput(10, 1, "zstd")

    def with_page_index(self, group):
        sink = pa.BufferOutputStream()
        pq.write_table(group, sink, row_group_size=group.num_rows, write_page_index=True)
        return sink.getvalue()

    monkeypatch.setattr(Encoder, "encode", with_page_index)
    with pytest.raises(IntegrityError, match="page index or a bloom filter"):
        joined(tmp_path / "j.parquet", table.schema, pieces_of(table, []), output, 2, 0)


def test_a_table_of_many_columns_is_written_by_one_writer_with_the_same_bytes(tmp_path, monkeypatch):
    """Joining footers costs Python time per column chunk (a reviewer measured
    3.4 s against 1.6 s at 2,000 columns): such tables go through one writer,
    which must give the bytes joining gives."""
    from snakeshuf.records import rowgroups

    wide = pa.table({f"c{i}": pa.array(np.arange(300) * i) for i in range(rowgroups.MAX_JOINED_COLUMNS + 1)})
    output = ParquetOutput(70, 1, "zstd")
    paths = {}
    for limit in (rowgroups.MAX_JOINED_COLUMNS, 10**6):
        monkeypatch.setattr(rowgroups, "MAX_JOINED_COLUMNS", limit)
        with Encoder(2, 10**9, output) as encoder:
            out = RowGroups(tmp_path / f"{limit}.parquet", wide.schema, output, encoder)
            assert isinstance(out.out, rowgroups.OneWriter) == (limit < 10**6)
            for batch in pieces_of(wide, [100, 250]):
                out.add(batch)
            out.close()
        paths[limit] = (tmp_path / f"{limit}.parquet").read_bytes()
    assert paths[rowgroups.MAX_JOINED_COLUMNS] == paths[10**6]
    assert pq.read_table(io.BytesIO(paths[10**6])).equals(wide)


def header(*fields):
    """A page header's bytes from (field id, compact type, raw value bytes)."""
    out, last = bytearray(), 0
    for field, kind, raw in fields:
        out += bytes([(field - last) << 4 | kind]) + raw
        last = field
    return bytes(out + b"\0")


DAMAGED_HEADERS = {  # found by a review: each raised TypeError or RecursionError, or read on without end
    "a size that is bytes": header((1, thrift.I32, b"\x00"), (2, thrift.I32, b"\x04"), (3, thrift.BINARY, b"\x01A")),
    "a size that is a boolean": header((1, thrift.I32, b"\x00"), (2, thrift.I32, b"\x04"), (3, thrift.TRUE, b"")),
    "dictionary entries that are bytes": header((1, thrift.I32, b"\x04"), (7, thrift.STRUCT, b"\x18\x01A\x00")),
    "a negative size": header((1, thrift.I32, b"\x00"), (2, thrift.I32, b"\x04"), (3, thrift.I32, b"\x03")),
    "structs nested without end": b"\x1c" * 3000,
    "a length past the column chunk": header((1, thrift.I32, b"\x00"), (4, thrift.BINARY, b"\xff\xff\xff\x7f")),
}


@pytest.mark.parametrize("case", DAMAGED_HEADERS)
def test_a_damaged_page_header_is_a_value_error_which_the_plan_reports(case):
    from snakeshuf.records.parquet import PageHeaders

    data = DAMAGED_HEADERS[case] + b"\0" * (1 << 20)
    with pytest.raises(ValueError):
        PageHeaders(lambda offset, size: data[offset : offset + size]).page(0, 4096)


def test_booleans_in_maps_round_trip():
    struct = {1: (thrift.MAP, (thrift.I32, thrift.TRUE, [(1, 1), (2, 2)])), 2: (thrift.MAP, (thrift.TRUE, thrift.I16,
                                                                                             [(1, -3)]))}
    data = thrift.encoded(struct)
    assert thrift.Reader(data).struct() == struct and thrift.encoded(thrift.Reader(data).struct()) == data
