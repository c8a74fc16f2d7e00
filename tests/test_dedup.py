"""Exact deduplication (config key 'dedup', issue 29): by a field of JSONL,
TSV and CSV records, compared with the reference model (run_workflow does);
records without the field; errors naming the file and line, or the key,
before any job where the configuration alone is wrong; memory when one
record has a great many copies. Dedup by whole records over random corpora
is in the differential tests, its uniformity in test_uniformity.py."""

import json
import os

import pytest

from conftest import job_reports, run_workflow
from test_memory import assert_within_budget

SMALL_UNIT = {**os.environ, "SNAKESHUF_MIB_BYTES": "1024"}  # many chunks, buckets and passes at kilobytes


def jsonl(count, distinct):
    """Records whose 'text' repeats, written with other keys, spacing and key orders."""
    lines = []
    for i in range(count):
        value = {"t": f"doc {i % distinct}", "n": [i % distinct, None]}
        lines.append(json.dumps({"id": i, "text": value}) if i % 2 else json.dumps({"text": value, "id": -i}, indent=None, separators=(",", ":")))
    return "".join(line + "\n" for line in lines)


def test_a_jsonl_field_keeps_the_first_record_of_each_value(tmp_path, memory_mb=160):
    (tmp_path / "a.jsonl").write_text(jsonl(3000, 700))
    (tmp_path / "b.jsonl").write_text(jsonl(1000, 900))
    config = {"inputs": ["a.jsonl", "b.jsonl"], "output": "out/d.jsonl", "memory_mb": memory_mb, "shards": 3,
              "dedup": {"field": "text"}}
    run_workflow(tmp_path, config, env=SMALL_UNIT)
    summary = json.loads((tmp_path / "out/d.jsonl.summary.json").read_text())
    assert [s["records_out"] for s in summary["sources"]] == [700, 200]
    assert [s["duplicates"] for s in summary["sources"]] == [2300, 800]


def test_weights_apply_to_the_records_dedup_keeps_from_the_heaviest_source(tmp_path):
    """A duplicate keeps the copy of the source with the largest weight,
    wherever it is listed: docs 0-899 of the light source listed first are
    in the heavy one, 900-1199 only in the light one."""
    (tmp_path / "light.jsonl").write_text(jsonl(3000, 1200))
    (tmp_path / "heavy.jsonl").write_text(jsonl(1000, 900))
    config = {"inputs": ["light.jsonl", "heavy.jsonl"], "output": "out/d.jsonl", "memory_mb": 160, "shards": 2,
              "dedup": {"field": "text"}, "weights": {"light.jsonl": 0.5, "heavy.jsonl": 2.5}}
    run_workflow(tmp_path, config, env=SMALL_UNIT)
    summary = json.loads((tmp_path / "out/d.jsonl.summary.json").read_text())
    counts = [(s["records_in"], s["duplicates"], s["records_out"]) for s in summary["sources"]]
    assert counts == [(3000, 2700, 150), (1000, 100, 2 * 900 + 450)]


def test_key_ranges_with_no_record_left_and_an_empty_input(tmp_path):
    """Hostile pass on dedup with weights: a bucket job whose key range
    had no records crashed (every key range but a few is empty here)."""
    (tmp_path / "same.txt").write_bytes(b"one line, many times\n" * 12_000)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "more.txt").write_bytes(b"one line, many times\n" * 3_000 + b"another\n")
    config = {"inputs": ["same.txt", "empty.txt", "more.txt"], "output": "out/d.txt", "memory_mb": 160,
              "dedup": "record", "weights": {"same.txt": 0.5, "more.txt": 2.5}}
    run_workflow(tmp_path, config, env=SMALL_UNIT)
    lines = (tmp_path / "out/d.txt").read_bytes().splitlines()  # two records of weight 2.5: 2 copies each, 1 more
    assert sorted([lines.count(b"another"), lines.count(b"one line, many times")]) == [2, 3]


def test_short_records_deduplicated_and_weighted_keep_the_tally_within_memory(tmp_path):
    """Hostile pass: with fractions to choose, the tally held two passes at
    once and went 6-28 % over memory_mb."""
    import random

    values = list(range(600_000))
    random.Random(17).shuffle(values)
    for name, part in (("a.txt", values[:300_000]), ("b.txt", values[300_000:]), ("c.txt", values[::2])):
        (tmp_path / name).write_bytes(b"".join(b"%06d\n" % v for v in part))
    config = {"inputs": ["a.txt", "b.txt", "c.txt"], "output": "out/d.txt", "memory_mb": 160, "dedup": "record",
              "weights": {"a.txt": 2.5, "b.txt": 1.5, "c.txt": 3.5}}
    run_workflow(tmp_path, config)
    assert_within_budget(tmp_path, {"split", "tally", "shuffle", "gather"})


@pytest.mark.parametrize("field, header_lines", [("text", 1), (3, 0)])
@pytest.mark.parametrize("form", ["tsv", "csv"])
def test_a_tsv_or_csv_column_by_name_or_number(tmp_path, form, field, header_lines):
    sep = "\t" if form == "tsv" else ","
    quote = (lambda v: f'"{v}, quoted"') if form == "csv" else (lambda v: v)
    rows = [sep.join([str(i), "x", quote(f"v{i % 97}")]) for i in range(2000)]
    header = sep.join(["id", "kind", "text"]) + "\n" if header_lines else ""
    (tmp_path / f"c.{form}").write_text(header + "".join(r + "\n" for r in rows))
    config = {"inputs": [f"c.{form}"], "output": "out/d.txt", "memory_mb": 160, "header_lines": header_lines,
              "dedup": {"field": field}}
    run_workflow(tmp_path, config, env=SMALL_UNIT)
    assert len((tmp_path / "out/d.txt").read_text().splitlines()) == 97 + header_lines


def test_a_record_without_the_field_is_named_by_file_and_line_unless_missing_says(tmp_path):
    lines = [json.dumps({"text": f"t{i % 5}"}) for i in range(40)]
    lines[16] = json.dumps({"other": 1})
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    config = {"inputs": ["a.jsonl"], "output": "out/d.jsonl", "memory_mb": 160, "dedup": {"field": "text"}}
    result = run_workflow(tmp_path, config, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "input 'a.jsonl', line 17: the record has no field 'text'" in result.stderr.replace(str(tmp_path) + "/", "")
    assert not (tmp_path / "out/d.jsonl").exists()
    for missing, published in (("keep", 6), ("drop", 5)):
        config["dedup"] = {"field": "text", "missing": missing}
        run_workflow(tmp_path / missing, {**config, "inputs": [str(tmp_path / "a.jsonl")]})
        assert len((tmp_path / missing / "out/d.jsonl").read_text().splitlines()) == published
        [source] = json.loads((tmp_path / missing / "out/d.jsonl.summary.json").read_text())["sources"]
        assert (source["without_field"], source["records_out"]) == (1, published), "counted either way (hostile pass)"


def test_a_record_that_is_not_json_is_named_by_file_and_line(tmp_path):
    import gzip

    lines = [json.dumps({"text": i}) for i in range(30)]
    lines[21] = '{"text": 1'
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    config = {"inputs": ["a.jsonl.gz"], "output": "out/d.jsonl", "memory_mb": 160, "dedup": {"field": "text"}}
    result = run_workflow(tmp_path, config, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "a.jsonl.gz', line 22: the record is not JSON" in result.stderr


@pytest.mark.parametrize("config, says", [
    ({"inputs": ["a.txt"], "dedup": {"field": "text"}}, "is not named .jsonl, .tsv or .csv"),
    ({"inputs": ["a.tsv"], "dedup": {"field": "text"}}, "the inputs have no header"),
    ({"paired": [["a.txt", "a.tsv"]], "dedup": {"field": 1}}, "deduplicated by whole records only"),
    ({"inputs": ["a.txt"], "dedup": {"field": 0}}, "is not none, record or {field: a name or a column number"),
    ({"inputs": ["h.tsv"], "header_lines": 1, "dedup": {"field": "nope"}}, "has no column 'nope' in its header (id, text)"),
    ({"inputs": ["a.txt"], "dedup": {"field": ""}}, "dedup"),
    ({"inputs": ["a.txt"], "dedup": {"field": "x", "missing": "ignore"}}, "dedup"),
])
def test_a_dedup_configuration_that_cannot_work_is_refused_before_any_job(tmp_path, config, says):
    (tmp_path / "a.txt").write_text("x\ny\n")
    (tmp_path / "a.tsv").write_text("1\t2\n3\t4\n")
    (tmp_path / "h.tsv").write_text("id\ttext\n1\t2\n")
    result = run_workflow(tmp_path, {"output": "out/d.txt", **config}, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert says in result.stderr and "snakeshuf: error:" in result.stderr, result.stderr[-2000:]
    assert not job_reports(tmp_path), "a job ran"


def test_a_great_many_copies_of_a_few_records_stay_within_memory(tmp_path):
    """Three million empty lines and 60,000 copies of a 1 KB footer among
    distinct lines: each spill keeps one copy of each, so no key range holds
    more than a few."""
    footer = b"-- " + b"boilerplate " * 85 + b"\n"
    with open(tmp_path / "dups.txt", "wb") as out:
        for block in range(60):
            out.write(b"\n" * 50_000)
            out.write(footer * 1000)
            out.write(b"".join(b"line %d-%d\n" % (block, i) for i in range(500)))
    config = {"inputs": ["dups.txt"], "output": "out/d.txt", "memory_mb": 160, "dedup": "record"}
    run_workflow(tmp_path, config)
    published = (tmp_path / "out/d.txt").read_bytes()
    assert sorted(published.split(b"\n")[:-1]) == sorted([b"", footer[:-1]] + [b"line %d-%d" % (b, i)
                                                                                  for b in range(60) for i in range(500)])
    assert_within_budget(tmp_path, {"split", "tally", "shuffle", "gather"})


@pytest.mark.parametrize("dedup", ["record", {"field": 1}])
def test_tiny_records_deduplicated_stay_within_memory(tmp_path, dedup):
    """Three-byte records, a third of them repeated: the split jobs' arrays
    per record (keys, tags, their sort) are the most a batch holds."""
    import numpy as np

    values = np.random.default_rng(9).integers(0, 750_000, 1_000_000)  # full batches of 131,072 records
    (tmp_path / "tiny.tsv").write_bytes(b"".join(b"%x\n" % v for v in values))
    config = {"inputs": ["tiny.tsv"], "output": "out/d.txt", "memory_mb": 160, "dedup": dedup}
    run_workflow(tmp_path, config)
    assert len((tmp_path / "out/d.txt").read_bytes().splitlines()) == len(np.unique(values))
    assert_within_budget(tmp_path, {"split", "tally", "shuffle", "gather"})


def test_json_values_are_compared_exactly_never_as_floats(tmp_path):
    """Hostile pass on issue 29: 1e400 and 1e500 (both infinite as floats), 0.1 and
    0.10000000000000001 (one float) were merged and the second dropped, NaN
    was taken for JSON, a lone surrogate escape, deep nesting and a
    5,000-digit integer ended in tracebacks."""
    values = ["1e400", "1e500", "-1e400", "1", "1.0", "1e0", "0.1", "0.10000000000000001", "-0", "0",
              '"\\ud800"', '"\\udc00"', '"\\u00e9"', '"é"', '{"b": 1, "a": [1, 2.50]}', '{"a":[1,2.5],"b":1.0}',
              "1" * 5000, '"1"']
    (tmp_path / "v.jsonl").write_text("".join(f'{{"id": {i}, "text": {v}}}\n' for i, v in enumerate(values)))
    config = {"inputs": ["v.jsonl"], "output": "out/d.jsonl", "memory_mb": 160, "dedup": {"field": "text"}}
    run_workflow(tmp_path, config)
    kept = sorted(int(line.split(",")[0].removeprefix('{"id": '))
                  for line in (tmp_path / "out/d.jsonl").read_text().splitlines())
    assert kept == [0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 14, 16, 17]  # 1.0, 1e0, 0, "é" and the second object are duplicates
    for i, bad in enumerate(["NaN", "Infinity", "[" * 5000 + "]" * 5000]):
        (tmp_path / f"bad{i}.jsonl").write_text('{"text": 1}\n' + f'{{"text": {bad}}}\n')
        result = run_workflow(tmp_path / f"bad{i}", {**config, "inputs": [str(tmp_path / f"bad{i}.jsonl")]}, check=False)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert f"bad{i}.jsonl', line 2: the record" in result.stderr


def test_a_long_jsonl_record_whose_field_would_outgrow_memory_is_retried_with_the_memory_named(tmp_path):
    """Hostile pass: a 7.9 MB record of dense JSON, under the 8 MiB longest
    record at 160 MB, peaked at 290 MB while its field was read. Now the
    split job refuses it, naming the memory that reads it, and the retry at
    twice the memory (the profile's) does, within that memory."""
    (tmp_path / "n.jsonl").write_text('{"text": 1}\n{"text": [' + ",".join(["{}"] * 400_000) + "]}\n")
    config = {"inputs": ["n.jsonl"], "output": "out/d.jsonl", "memory_mb": 160, "dedup": {"field": "text"}}
    refused = run_workflow(tmp_path / "once", {**config, "inputs": [str(tmp_path / "n.jsonl")]}, "--retries", "0",
                           check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "n.jsonl', line 2: a record of 1,200,012 bytes, too long to read its field" in refused.stderr
    assert "set memory_mb to at least" in refused.stderr
    run_workflow(tmp_path, config)
    split = [r for r in job_reports(tmp_path) if r["stage"] == "split"]
    assert [r["memory_mb"] for r in split] == [320] and split[0]["peak_rss_mb"] <= 320


def test_duplicates_cost_about_what_distinct_records_cost(tmp_path):
    """Hostile pass: each duplicate cost ~80 µs (the batch's record starts
    were rebuilt for every one), 500,000 copies of one line 40 s of split.
    Counted in the split job's CPU seconds, against distinct lines."""
    (tmp_path / "same.txt").write_text("x\n" * 400_000)
    (tmp_path / "distinct.txt").write_text("".join(f"{i}\n" for i in range(400_000)))
    cpu = {}
    for name in ("same", "distinct"):
        run_workflow(tmp_path / name, {"inputs": [str(tmp_path / f"{name}.txt")], "output": "o.txt", "memory_mb": 160,
                                       "dedup": "record"})
        cpu[name] = sum(r["cpu_seconds"] for r in job_reports(tmp_path / name) if r["stage"] == "split")
    assert cpu["same"] < 3 * cpu["distinct"] + 1, cpu
