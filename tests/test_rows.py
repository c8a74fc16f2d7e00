"""Rows as records (snakeshuf.records.rows): every row comes back as it was, and equal
rows are equal bytes however a file stored them."""

import io
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from snakeshuf.records import rows
from tables import tables

# CI draws the same examples every time; SNAKESHUF_RANDOM=1 draws new ones (with
# --hypothesis-seed, or SNAKESHUF_EXAMPLES-like budgets through Hypothesis' own options).
DERANDOMIZE = not os.environ.get("SNAKESHUF_RANDOM")


def encoded(table):
    return rows.encode(table.combine_chunks().to_batches()[0]) if table.num_rows else rows.encode(
        pa.RecordBatch.from_pylist([], schema=table.schema))


def row_bytes(table):
    data, ends = encoded(table)
    starts = np.concatenate(([0], ends[:-1]))
    return [data[s:e].tobytes() for s, e in zip(starts, ends)]


@settings(max_examples=150, deadline=None, derandomize=DERANDOMIZE)
@given(tables())
@example(  # found in CI: Arrow's cast of a null list to a fixed-size list asked for 754 TB
    pa.table({"c0": pa.array([None], pa.list_(pa.large_list(pa.int8()), 2)), "c1": pa.array([None], pa.int8())}))
def test_every_row_decodes_to_itself(table):
    data, ends = encoded(table)
    back = rows.decode(table.schema, data, ends)
    assert back.equals(table.combine_chunks().to_batches()[0] if table.num_rows else back.slice(0, 0))
    assert pa.Table.from_batches([back]).equals(table)


@settings(max_examples=60, deadline=None, derandomize=DERANDOMIZE)
@given(tables(min_rows=1), st.data())
def test_a_row_is_the_same_bytes_in_any_slice_of_its_batch(table, data):
    lo = data.draw(st.integers(0, table.num_rows - 1))
    hi = data.draw(st.integers(lo + 1, table.num_rows))
    assert row_bytes(table.slice(lo, hi - lo)) == row_bytes(table)[lo:hi]


@settings(max_examples=40, deadline=None, derandomize=DERANDOMIZE)
@given(tables(min_rows=1, max_rows=30), st.integers(1, 7), st.sampled_from(["zstd", "snappy", "none"]),
       st.booleans())
def test_a_row_is_the_same_bytes_however_parquet_stored_it(table, row_group, compression, dictionary):
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group, compression=compression, use_dictionary=dictionary,
                   data_page_size=64)
    stored = pq.read_table(io.BytesIO(sink.getvalue()))
    assert row_bytes(stored) == row_bytes(table)


def test_equal_rows_are_equal_bytes_and_unequal_ones_are_not():
    table = pa.table({"a": [1, 1, None, 1], "b": ["x", "x", "x", None]})
    first, second, third, fourth = row_bytes(table)
    assert first == second
    assert len({first, third, fourth}) == 3


def test_a_null_and_an_empty_string_differ_and_so_do_the_splits_of_a_list():
    table = pa.table({"s": pa.array([None, ""]), "l": pa.array([[["ab"], []], [["a"], ["b"]]])})
    assert len(set(row_bytes(table))) == 2
    assert row_bytes(table.select(["s"]))[0] != row_bytes(table.select(["s"]))[1]


@pytest.mark.parametrize("cut", [1, 3, 7])
def test_damaged_rows_are_refused_not_misread(cut):
    table = pa.table({"s": ["hello", "world"], "l": [[1, 2], [3]]})
    data, ends = encoded(table)
    with pytest.raises(rows.DamagedRow):
        rows.decode(table.schema, data[:-cut], np.minimum(ends, len(data) - cut))
