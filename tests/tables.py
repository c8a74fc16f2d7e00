"""Random Arrow tables for the tests: random schemas (integers, floats,
booleans, dates, timestamps, decimals, strings and binaries with NUL and
newlines, lists, large and fixed-size lists, maps, structs, nested), with
nulls everywhere a value may be null."""

import datetime
from decimal import Decimal

import pyarrow as pa
from hypothesis import strategies as st

TEXT = st.text(alphabet=st.sampled_from("ab\n\0\u00e9\u4e2d "), max_size=12)
LEAVES = {
    pa.int8(): st.integers(-128, 127),
    pa.int64(): st.integers(-(2**63), 2**63 - 1),
    pa.uint32(): st.integers(0, 2**32 - 1),
    pa.float64(): st.floats(allow_nan=False),
    pa.float32(): st.floats(width=32, allow_nan=False),
    pa.bool_(): st.booleans(),
    pa.string(): TEXT,
    pa.large_string(): TEXT,
    pa.binary(): st.binary(max_size=12),
    pa.date32(): st.dates(),
    pa.timestamp("us"): st.datetimes(min_value=datetime.datetime(1900, 1, 1)),
    pa.decimal128(9, 2): st.decimals(min_value=Decimal("-9999999.99"), max_value=Decimal("9999999.99"), places=2),
}


def types(depth=2):
    leaves = st.sampled_from(list(LEAVES))
    if depth == 0:
        return leaves
    inner = types(depth - 1)
    return st.one_of(
        leaves,
        inner.map(pa.list_),
        inner.map(pa.large_list),
        inner.map(lambda t: pa.list_(t, 2)),
        inner.map(lambda t: pa.map_(pa.string(), t)),
        st.lists(inner, min_size=1, max_size=3).map(
            lambda ts: pa.struct([(f"f{i}", t) for i, t in enumerate(ts)])),
    )


def values(kind):
    """Python values of an Arrow type, or None."""
    if kind in LEAVES:
        inner = LEAVES[kind]
    elif pa.types.is_fixed_size_list(kind):
        inner = st.lists(values(kind.value_type), min_size=kind.list_size, max_size=kind.list_size)
    elif pa.types.is_map(kind):
        inner = st.lists(st.tuples(TEXT, values(kind.item_type)), max_size=3)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = st.lists(values(kind.value_type), max_size=4)
    else:
        inner = st.fixed_dictionaries({f.name: values(f.type) for f in kind})
    return st.none() | inner


@st.composite
def tables(draw, max_rows=12, min_rows=0):
    columns = draw(st.lists(types(), min_size=1, max_size=4))
    rows = draw(st.integers(min_rows, max_rows))
    arrays = [pa.array(draw(st.lists(values(t), min_size=rows, max_size=rows)), t) for t in columns]
    return pa.table(arrays, names=[f"c{i}" for i in range(len(arrays))])
