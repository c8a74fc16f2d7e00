"""Parquet inputs and outputs (issue 30): rows are the records, the order is a
function of the rows alone, and every output file is a valid Parquet file
with the inputs' schema. Random schemas and layouts against the reference
model are in tests/test_differential.py (table scenarios)."""

import datetime
import hashlib
import io
import json
import os
import subprocess

import duckdb
import numpy as np
import polars
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import run_workflow, snakeshuf
from snakeshuf.errors import InputError, IntegrityError
from snakeshuf.records import parquet
from tables import seeded_table

SCHEMA_SEED = 25169  # tokens (list), spans (list of structs of lists), score, bytes


def write(path, table, **how):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **how)
    return str(path)


def digests(workdir, names):
    return {name: hashlib.sha256((workdir / name).read_bytes()).hexdigest() for name in names}


ENCODINGS = [
    {"row_group_size": 10_000, "compression": "zstd"},
    {"row_group_size": 1, "compression": "none", "use_dictionary": False},
    {"row_group_size": 37, "compression": "gzip", "data_page_size": 128},
]


def test_the_order_depends_on_the_rows_not_on_how_the_files_store_them(tmp_path):
    """The same rows stored with other row groups, pages, compression and
    dictionaries: the same output bytes, file for file."""
    tables = [seeded_table(SCHEMA_SEED, seed, rows) for seed, rows in ((1, 300), (2, 0), (3, 45))]
    published = []
    for n, how in enumerate(ENCODINGS):
        inputs = [write(tmp_path / f"in{n}" / f"t{i}.parquet", t, **how) for i, t in enumerate(tables)]
        config = {"inputs": inputs, "output": "out/s.parquet", "shards": 3, "memory_mb": 512 + 100 * n}
        run_workflow(tmp_path / f"run{n}", config)  # and compared with the reference model
        published.append(digests(tmp_path / f"run{n}", [f"out/s.{k:05d}-of-00003.parquet" for k in range(3)]))
    assert published[0] == published[1] == published[2]


def test_an_output_row_group_made_of_several_buckets_pieces_has_the_bytes_of_one_made_whole(tmp_path):
    """Found by a hostile pass: a row group that spans buckets was written as
    one chunk per piece, and Parquet cuts pages where chunks end, so the bytes
    changed with the number of buckets (memory_mb); and so did a dictionary
    column's dictionary, merged from the pieces'. One row group of 60,000
    rows (3 MB of text, pages of 1 MiB): one bucket at a memory unit of
    1 MiB, several at 16 KiB."""
    rng = np.random.default_rng(3)
    languages = pa.array(rng.choice(["en", "de", "fr", "zh", "es", "ja", "ru"], 60_000)).dictionary_encode()
    table = pa.table({"n": np.arange(60_000), "text": [f"{x:040x}" for x in rng.integers(0, 2**62, 60_000)],
                      "language": languages})  # a dictionary merged from the pieces kept their other rows' values
    small_pages = {"row_group_size": 500, "data_page_size": 4096, "write_batch_size": 64}
    config = {"inputs": [write(tmp_path / "t.parquet", table, **small_pages)], "output": "s.parquet", "memory_mb": 512}
    outputs = []
    for unit in (1 << 20, 16 << 10):
        run = tmp_path / str(unit)
        run_workflow(run, config, env={**os.environ, "SNAKESHUF_MIB_BYTES": str(unit)})
        outputs.append((run / "s.parquet").read_bytes())
        buckets = json.loads((run / "s.parquet.summary.json").read_text())["buckets"]
        assert (buckets == 1) == (unit == 1 << 20), buckets
    assert pq.ParquetFile(io.BytesIO(outputs[0])).metadata.num_row_groups == 1
    assert outputs[0] == outputs[1]


def test_every_output_file_is_read_alike_by_pyarrow_duckdb_and_polars(tmp_path):
    table = seeded_table(SCHEMA_SEED, 5, 500)
    config = {"inputs": [write(tmp_path / "t.parquet", table)], "output": "out/s.parquet",
              "splits": {"valid": 50, "train": "rest"}, "memory_mb": 512}
    run_workflow(tmp_path / "run", config)
    ids = []
    for split, rows in (("valid", 50), ("train", 450)):
        path = str(tmp_path / "run" / "out" / f"s.{split}.parquet")
        arrow = pq.read_table(path)
        assert arrow.num_rows == rows
        [(count, total)] = duckdb.sql(f"SELECT count(*), sum(score) FROM read_parquet('{path}')").fetchall()
        assert (count, total) == (rows, pytest.approx(pc.sum(arrow.column("score")).as_py()))
        assert polars.read_parquet(path).to_arrow().to_pylist() == arrow.to_pylist()
        ids += [json.dumps(row, sort_keys=True, default=repr) for row in arrow.to_pylist()]
    assert sorted(ids) == sorted(json.dumps(row, sort_keys=True, default=repr) for row in table.to_pylist())


def test_output_row_groups_end_at_row_group_rows_or_row_group_mb(tmp_path):
    wide = pa.table({"n": pa.array(range(40), pa.int32()), "text": ["x" * 300_000] * 40})
    narrow = pa.table({"n": pa.array(range(40), pa.int32()), "text": ["x"] * 40})
    for name, table, settings, groups in (
        ("narrow", narrow, {"row_group_rows": 7}, [7, 7, 7, 7, 7, 5]),
        ("wide", wide, {"row_group_rows": 100, "row_group_mb": 1}, [4] * 10),  # the 4th row passes 1 MiB
    ):
        config = {"inputs": [write(tmp_path / f"{name}.parquet", table)], "output": "s.parquet",
                  "parquet": {**settings, "compression": "snappy"}, "memory_mb": 512}
        run_workflow(tmp_path / name, config)
        meta = pq.ParquetFile(tmp_path / name / "s.parquet").metadata
        assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == groups
        assert meta.row_group(0).column(0).compression == "SNAPPY"


def test_the_schema_and_its_metadata_are_kept(tmp_path):
    table = seeded_table(SCHEMA_SEED, 8, 20).replace_schema_metadata({"origin": "crawl 2026-11", "license": "cc-by"})
    run_workflow(tmp_path / "run", {"inputs": [write(tmp_path / "t.parquet", table)], "output": "s.parquet",
                                    "memory_mb": 512})
    published = pq.read_table(tmp_path / "run" / "s.parquet")
    assert published.schema.equals(pq.read_schema(tmp_path / "t.parquet"), check_metadata=True)
    assert published.schema.metadata[b"license"] == b"cc-by"


def parquet_bytes(table):
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


REFUSED = {
    "a column missing": (lambda t: t.drop_columns(["score"]), "t1.parquet' has another schema than",
                         "it has no column 'score'"),
    "a column of another type": (lambda t: t.set_column(2, "score", t.column("score").cast(pa.float32())),
                                 "t1.parquet' has another schema", "column 'score' is float there, double in the first"),
    "a file cut short": (lambda t: parquet_bytes(t)[:-20], "t1.parquet' starts like a Parquet file but does not "
                         "end like one", "cut short"),
    "a file cut short within its footer": (lambda t: parquet_bytes(t)[:-20] + b"PAR1", "t1.parquet' starts like a "
                                           "Parquet file but cannot be read as one", "truncated"),
    "a text file named .parquet among them": (lambda t: b"one line\n", "t1.parquet' is named as a Parquet file "
                                              "but is not one"),
    "an empty file named .parquet": (lambda t: b"", "t1.parquet' is named as a Parquet file but is empty"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_bad_tables_are_refused_before_any_job_naming_the_file(tmp_path, case):
    make, *expected = REFUSED[case]
    table = seeded_table(SCHEMA_SEED, 1, 30)
    write(tmp_path / "t0.parquet", table)
    other = make(table)
    (tmp_path / "t1.parquet").write_bytes(other if isinstance(other, bytes) else parquet_bytes(other))
    result = run_workflow(tmp_path / "run", {"inputs": [str(tmp_path / "t0.parquet"), str(tmp_path / "t1.parquet")],
                                            "output": "s.parquet", "memory_mb": 512}, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "run" / "logs").exists(), "a job ran"
    assert not (tmp_path / "run" / "s.parquet").exists()


CONFIG_REFUSED = {
    "an output not named .parquet": ({"output": "s.jsonl"}, "the output is a Parquet file: name it *.parquet"),
    "header lines": ({"header_lines": 1}, "a Parquet file has no header lines"),
    "a separator": ({"separator": "nul"}, "rows have no separator: leave out config key 'separator' (snakeshuf -z)"),
    "dedup by a field's format": ({"dedup": {"field": "score", "format": "jsonl"}}, "leave out dedup's 'format'"),
    "dedup by a column the tables lack": ({"dedup": {"field": "text"}}, "have no column 'text'; their columns are "
                                          "tokens, spans, score, bytes"),
    "row groups too large for the memory": ({"memory_mb": 300}, "row groups of up to 32 MiB need memory_mb of at "
                                            "least 320; lower parquet.row_group_mb or raise memory_mb"),
    "an unknown compression": ({"parquet": {"compression": "lzo"}}, "config key 'parquet.compression'"),
}


@pytest.mark.parametrize("case", CONFIG_REFUSED)
def test_what_a_run_of_rows_cannot_do_is_refused_before_any_job(tmp_path, case):
    change, expected = CONFIG_REFUSED[case]
    config = {"inputs": [write(tmp_path / "t.parquet", seeded_table(SCHEMA_SEED, 1, 5))], "output": "s.parquet",
              "memory_mb": 512, **change}
    result = run_workflow(tmp_path / "run", config, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert expected in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "run" / "logs").exists(), "a job ran"


def test_a_text_run_named_as_parquet_is_refused(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"a": 1}\n')
    result = run_workflow(tmp_path / "run", {"inputs": [str(tmp_path / "a.jsonl")], "output": "s.parquet"},
                          check=False)
    assert result.returncode != 0 and "named as a Parquet file, but the inputs are text" in result.stderr


def test_the_command_reads_tables_from_files_and_pipes_and_writes_them_to_files_and_stdout(installed, tmp_path):
    tables = [seeded_table(SCHEMA_SEED, seed, 40) for seed in (1, 2)]
    for i, table in enumerate(tables):
        write(tmp_path / f"t{i}.parquet", table, row_group_size=7)
    to_file = snakeshuf(tmp_path, installed, "t0.parquet", "t1.parquet", "-o", "s.parquet", "--memory", "512M")
    assert to_file.returncode == 0, to_file.stderr[-3000:]
    published = (tmp_path / "s.parquet").read_bytes()
    to_stdout = subprocess.run(["snakeshuf", "t0.parquet", "t1.parquet", "-o", "-", "--memory", "512M"],
                               cwd=tmp_path, env=installed, capture_output=True)
    assert to_stdout.returncode == 0 and to_stdout.stdout == published, to_stdout.stderr.decode()[-3000:]
    one = snakeshuf(tmp_path, installed, "t0.parquet", "-o", "one.parquet", "--memory", "512M")
    assert one.returncode == 0, one.stderr[-3000:]
    piped = subprocess.run(["snakeshuf", "-", "-o", "piped.parquet", "--memory", "512M"], cwd=tmp_path, env=installed,
                           input=(tmp_path / "t0.parquet").read_bytes(), capture_output=True)
    assert piped.returncode == 0, piped.stderr.decode()[-3000:]
    assert (tmp_path / "piped.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()
    both_ends = subprocess.run(["snakeshuf", "-", "-o", "-", "--memory", "512M"], cwd=tmp_path, env=installed,
                               input=(tmp_path / "t0.parquet").read_bytes(), capture_output=True)
    assert both_ends.stdout == (tmp_path / "one.parquet").read_bytes(), both_ends.stderr.decode()[-3000:]
    cut = subprocess.run(["snakeshuf", "-", "-o", "cut.parquet", "--memory", "512M"], cwd=tmp_path, env=installed,
                         input=(tmp_path / "t0.parquet").read_bytes()[:-20], capture_output=True)
    # named as given (hostile pass: the message named the pipe's copy, in a directory already removed)
    assert cut.returncode == 2 and "input '-' starts like a Parquet file but does not end" in cut.stderr.decode()


@pytest.mark.parametrize("record", [b"\x01", b"\x02\x01", b"\x00\x01"], ids=["cut short", "a bad flag", "too long"])
def test_a_row_that_does_not_decode_is_never_written_into_a_piece(tmp_path, record):
    schema = pa.schema([("flag", pa.bool_())])
    with open(tmp_path / "piece", "wb") as handle:
        piece = parquet.PieceRows(handle, schema)
        piece.write(b"\x01\x01\x00", [2, 1])  # true, null: fine
        with pytest.raises(IntegrityError):
            piece.write(record, [len(record)])


def pandas_file(path):
    import pandas as pd

    frame = pd.DataFrame({"c": pd.Categorical(["a", "b", None] * 10), "v": range(30)},
                         index=pd.RangeIndex(1000, 1030, name="idx"))
    frame.to_parquet(path)


def polars_file(path):
    polars.DataFrame({"cat": ["x", "y", "x"] * 10, "n": range(30)}, schema={"cat": polars.Categorical,
                                                                          "n": polars.Int64}).write_parquet(path)


def duckdb_file(path):
    duckdb.sql(f"COPY (SELECT i, ('{{\"a\": ' || i || '}}')::JSON AS js, [i, NULL] AS l, {{'k': i}} AS s "
               f"FROM range(40) t(i)) TO '{path}'")


def arrow_file(path):
    import datetime

    text = pa.array([b"ok", b"caf\xe9", None] * 10, pa.binary())
    pq.write_table(pa.table({
        "__snakeshuf_row_bytes": range(30),  # the name a piece gives its rows' lengths
        "invalid utf-8": pa.Array.from_buffers(pa.string(), 30, text.buffers()),
        "words": pa.array(["the", "of", None] * 10).dictionary_encode(),
        "sentinel": pa.array([datetime.datetime(9999, 12, 31), datetime.datetime(1000, 6, 1), None] * 10,
                             pa.timestamp("us")),
    }), path, use_deprecated_int96_timestamps=True)


def as_bytes(table):
    """Strings as their bytes (which may be invalid UTF-8)."""
    return pa.table([c.cast(pa.binary()) if pa.types.is_string(c.type) else c for c in table.columns],
                    names=table.column_names)


WRITERS = {"pandas categorical, RangeIndex": pandas_file, "polars categorical": polars_file,
           "duckdb json, list, struct": duckdb_file, "pyarrow dictionary, int96, invalid utf-8": arrow_file}


@pytest.mark.parametrize("writer", WRITERS)
def test_tables_as_other_writers_store_them_come_out_as_they_went_in(tmp_path, writer):
    """Found by a hostile pass: a dictionary column crashed the bucket job,
    INT96 dates past 2262 wrapped, invalid UTF-8 crashed, a column named
    like a piece's lengths crashed gather, and pandas put a RangeIndex's
    labels on the shuffled rows."""
    path = tmp_path / "t.parquet"
    WRITERS[writer](path)
    run_workflow(tmp_path / "run", {"inputs": [str(path)], "output": "s.parquet", "memory_mb": 512, "shards": 2})
    published = [str(tmp_path / "run" / f"s.{k:05d}-of-00002.parquet") for k in range(2)]
    as_read = pq.ParquetFile(path, coerce_int96_timestamp_unit="us").schema_arrow  # as documented
    assert pq.read_schema(published[0]).equals(as_read, check_metadata=False)
    readers = [lambda p: as_bytes(pq.read_table(p, coerce_int96_timestamp_unit="us")).to_pylist()]
    if "utf-8" not in writer:  # DuckDB refuses to read invalid UTF-8, in the input as in the output
        readers.append(lambda p: duckdb.sql(f"SELECT * FROM read_parquet({p!r})").fetchall())
    for read in readers:
        came_out = [row for p in published for row in read(p)]
        assert sorted(map(repr, came_out)) == sorted(map(repr, read(str(path))))
    if writer.startswith("pandas"):
        import pandas as pd

        frame = pd.read_parquet(published[0])
        assert list(frame.index) == list(range(len(frame)))  # positions: the labels did not travel with the rows


def test_int96_timestamps_with_nanoseconds_are_refused_never_rounded(tmp_path):
    """Found by a hostile pass: INT96 timestamps are kept in microseconds (as
    Spark writes them; nanoseconds wrap past 2262), and Impala's nanoseconds
    were rounded away with exit 0. Now a value a microsecond cannot hold stops
    the run, naming the file, the column and the row; whole microseconds,
    far dates included, come out as they went in."""
    far = datetime.datetime(9999, 12, 31)
    microseconds = pa.array([far, datetime.datetime(2020, 1, 1, 0, 0, 0, 123457), None, datetime.datetime(
        2021, 5, 6, 7, 8, 9, 999999)], pa.timestamp("us"))  # a null once made the check compare floats
    twice = pa.table([pa.array(range(4)), microseconds, microseconds], names=["id", "ts", "ts"])  # by place, not name
    whole = write(tmp_path / "us.parquet", twice, use_deprecated_int96_timestamps=True)
    run_workflow(tmp_path / "ok", {"inputs": [whole], "output": "s.parquet", "memory_mb": 512})
    kept = pq.ParquetFile(tmp_path / "ok" / "s.parquet").read().sort_by("id")
    assert kept.column(1).to_pylist() == kept.column(2).to_pylist() == microseconds.to_pylist()
    nanoseconds = pa.array([1577836800123456789 + i for i in range(5)], pa.timestamp("ns"))
    fine = write(tmp_path / "ns.parquet", pa.table({"id": range(5), "ts": nanoseconds}),
                 use_deprecated_int96_timestamps=True)
    result = run_workflow(tmp_path / "refused", {"inputs": [fine], "output": "s.parquet", "memory_mb": 512},
                          check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"input '{fine}': row 1 of column 'ts' is an INT96 timestamp with nanoseconds" in result.stderr
    assert not (tmp_path / "refused" / "s.parquet").exists()


def test_types_a_read_and_a_write_would_change_are_refused_before_any_job(tmp_path):
    duckdb.sql(f"COPY (SELECT i, INTERVAL (i) DAY AS iv FROM range(5) t(i)) TO '{tmp_path / 'iv.parquet'}'")
    (tmp_path / "enc.parquet").write_bytes(b"PARE" + bytes(100) + b"PARE")
    pq.write_table(pa.table({"v": pa.array([[1], [2, 3]], pa.list_view(pa.int32()))}), tmp_path / "lv.parquet")
    for name, message in (("iv", "column 'iv' is an INTERVAL"), ("enc", "is an encrypted Parquet file"),
                          ("lv", "column 'v' is list_view<element: int32>, a type snakeshuf cannot shuffle yet")):
        result = run_workflow(tmp_path / name, {"inputs": [str(tmp_path / f"{name}.parquet")], "output": "s.parquet",
                                                "memory_mb": 512}, check=False)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert message in result.stderr, result.stderr[-2000:]
        assert not (tmp_path / name / "logs").exists(), "a job ran"


def test_a_damaged_page_header_is_refused_before_any_job_naming_the_file(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": range(100), "b": [str(i) for i in range(100)]}), path, compression="none",
                   use_dictionary=False)
    data = bytearray(path.read_bytes())
    data[10:14] = b"\xff\xff\xff\x7f"
    path.write_bytes(data)
    result = run_workflow(tmp_path / "run", {"inputs": [str(path)], "output": "s.parquet", "memory_mb": 512},
                          check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"input '{path}': row group 0 cannot be read" in result.stderr, result.stderr[-2000:]


def test_a_dedup_column_whose_name_two_columns_have_is_refused():
    """Found by a hostile pass: the first of two columns named 'a' was used."""
    schema = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("a", pa.string())])
    with pytest.raises(InputError, match="have 2 columns named 'a': give the column's number"):
        parquet.column_index("a", schema, "t.parquet")
    assert parquet.column_index(3, schema, "t.parquet") == 2 and parquet.column_index("b", schema, "t.parquet") == 1


def test_inputs_whose_metadata_differ_are_named_and_the_first_inputs_kept(tmp_path):
    """Found by a hostile pass: metadata that differ between inputs were
    resolved to the first input's in silence. The run says which file and
    key differ; the outputs keep the first input's (one schema's metadata)."""
    table = seeded_table(SCHEMA_SEED, 1, 5)
    first = write(tmp_path / "m1.parquet", table.replace_schema_metadata({"k": "v1"}))
    other = write(tmp_path / "m2.parquet", table.replace_schema_metadata({"k": "v2"}))
    result = run_workflow(tmp_path / "run", {"inputs": [first, other], "output": "s.parquet", "memory_mb": 512})
    assert f"input '{other}' has other metadata than '{first}' (key 'k'); the outputs keep the first's" \
        in result.stderr, result.stderr[-2000:]
    assert pq.read_schema(tmp_path / "run" / "s.parquet").metadata == {b"k": b"v1"}


def test_a_text_file_whose_first_line_begins_with_PAR1_is_text(tmp_path):
    """Found by a hostile pass: text starting 'PAR1' was taken for Parquet and
    refused. A Parquet file begins and ends with PAR1 (and its first bytes
    are binary); this one is shuffled as lines, alone or among other text."""
    (tmp_path / "par.txt").write_bytes(b"PAR1 is the first line\nsecond\nthird\n")
    (tmp_path / "other.tsv").write_bytes(b"a\tb\nc\td\n")
    config = {"inputs": [str(tmp_path / "par.txt"), str(tmp_path / "other.tsv")], "output": "s.txt"}
    run_workflow(tmp_path / "run", config)
    assert sorted((tmp_path / "run" / "s.txt").read_bytes().splitlines()) == \
        sorted(b"PAR1 is the first line\nsecond\nthird\na\tb\nc\td".splitlines())


def test_text_and_tables_are_never_shuffled_together(tmp_path):
    write(tmp_path / "t.parquet", seeded_table(SCHEMA_SEED, 1, 5))
    (tmp_path / "a.txt").write_text("one\n")
    result = run_workflow(tmp_path / "run", {"inputs": [str(tmp_path / "t.parquet"), str(tmp_path / "a.txt")],
                                            "output": "s.parquet", "memory_mb": 512}, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "t.parquet' is a Parquet file and" in result.stderr and "a.txt' is not" in result.stderr


def test_row_group_settings_rebuild_the_output_and_the_memory_budget_does_not(tmp_path):
    """Config key 'parquet' changes the published bytes, so it enters the
    output's fingerprint; memory_mb changes nothing, so the output stays current."""
    config = {"inputs": [write(tmp_path / "t.parquet", seeded_table(SCHEMA_SEED, 1, 50))], "output": "s.parquet",
              "memory_mb": 512}
    run_workflow(tmp_path / "run", config)
    first = (tmp_path / "run" / "s.parquet").read_bytes()
    again = run_workflow(tmp_path / "run", {**config, "memory_mb": 600})
    assert "up to date" in again.stderr and (tmp_path / "run" / "s.parquet").read_bytes() == first
    run_workflow(tmp_path / "run", {**config, "parquet": {"row_group_rows": 7}})
    meta = pq.ParquetFile(tmp_path / "run" / "s.parquet").metadata
    assert meta.num_row_groups == 8 and (tmp_path / "run" / "s.parquet").read_bytes() != first
