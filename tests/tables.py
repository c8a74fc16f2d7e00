"""Random Arrow tables for the tests: random schemas (integers, floats,
booleans, dates, timestamps, decimals, strings and binaries with NUL and
newlines, lists, large and fixed-size lists, maps, structs, nested), with
nulls everywhere a value may be null."""

import datetime
from decimal import Decimal

import numpy as np
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
    pa.dictionary(pa.int8(), pa.string()): TEXT,
    pa.decimal128(9, 2): st.decimals(min_value=Decimal("-9999999.99"), max_value=Decimal("9999999.99"), places=2),
}


def types(depth=2):
    """Column types; a dictionary only as a column's own type (Parquet cannot
    store a list of dictionary values that pyarrow reads back)."""
    leaves = st.sampled_from(list(LEAVES) if depth == 2 else [t for t in LEAVES if not pa.types.is_dictionary(t)])
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


# --- tables made from seeds (tests/scenarios.py), not drawn ---------------------------

CHARACTERS = list("ab \n\0\t\u00e9\u4e2d\"\\")


def seeded_strings(rng, count):
    return ["".join(rng.choice(CHARACTERS, int(rng.integers(0, 12)))) for _ in range(count)]


def nulls(rng, values, share=0.15):
    return [None if rng.random() < share else v for v in values]


COLUMN_KINDS = {
    "id": (pa.int64(), lambda rng, n: nulls(rng, rng.integers(-(2**62), 2**62, n).tolist())),
    "text": (pa.string(), lambda rng, n: nulls(rng, seeded_strings(rng, n))),
    "bytes": (pa.large_binary(), lambda rng, n: nulls(rng, [rng.bytes(int(rng.integers(0, 20))) for _ in range(n)])),
    "flag": (pa.bool_(), lambda rng, n: nulls(rng, (rng.random(n) < 0.5).tolist())),
    "score": (pa.float64(), lambda rng, n: nulls(rng, rng.normal(size=n).tolist())),
    "when": (pa.timestamp("us"), lambda rng, n: nulls(rng, [datetime.datetime(2000, 1, 1) + datetime.timedelta(
        microseconds=int(us)) for us in rng.integers(0, 10**15, n)])),
    "tokens": (pa.list_(pa.int32()), lambda rng, n: nulls(rng, [nulls(rng, rng.integers(0, 50000, int(
        rng.integers(0, 8))).tolist()) for _ in range(n)])),
    "meta": (pa.struct([("lang", pa.string()), ("quality", pa.float32())]), lambda rng, n: nulls(rng, [
        {"lang": s, "quality": float(q)} for s, q in zip(nulls(rng, seeded_strings(rng, n)), rng.random(n))])),
    "spans": (pa.list_(pa.struct([("start", pa.int16()), ("labels", pa.list_(pa.string()))])), lambda rng, n: nulls(
        rng, [[{"start": int(rng.integers(0, 1000)), "labels": nulls(rng, seeded_strings(rng, int(rng.integers(0, 3))))}
               for _ in range(int(rng.integers(0, 3)))] for _ in range(n)])),
    "attributes": (pa.map_(pa.string(), pa.int64()), lambda rng, n: nulls(rng, [
        list(zip(seeded_strings(rng, k), rng.integers(0, 9, k).tolist())) for k in rng.integers(0, 3, n)])),
}


def picked_kinds(schema_seed):
    """The columns (one to four of COLUMN_KINDS) that `schema_seed` picks."""
    kinds = sorted(COLUMN_KINDS)
    count = int(np.random.default_rng(schema_seed).integers(1, 5))
    return [str(k) for k in np.random.default_rng(schema_seed).choice(kinds, count, replace=False)]


# Schemas of one boolean column: rows of a few bytes, so thousands of them
# overflow a key range's share of a kilobyte memory unit (passes in a bucket).
NARROW_SCHEMA_SEEDS = tuple(s for s in range(1, 400) if picked_kinds(s) == ["flag"])


def seeded_table(schema_seed, seed, rows):
    """`rows` rows of the schema that `schema_seed` picks (picked_kinds, with
    file metadata), values from `seed`."""
    picked = picked_kinds(schema_seed)
    rng = np.random.default_rng(seed)
    arrays = [pa.array(COLUMN_KINDS[k][1](rng, rows), COLUMN_KINDS[k][0]) for k in picked]
    return pa.table(arrays, names=list(picked), metadata={"made_by": f"tests/tables.py {schema_seed}"})
