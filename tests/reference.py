"""The reference model: what a run must publish, computed in memory the obvious way.

`expected_outputs(config, contents)` takes a configuration and the bytes of
every input (decompressed, in input order), or for Parquet inputs each one's
table (pyarrow), and returns every output file's name and (uncompressed)
bytes or table, or raises Refused when a correct run must publish nothing. It shares with the workflow what *defines* the order: the
key function (snakeshuf.planning.keys.record_keys), for weights the key stream of
each copy and the selection key (snakeshuf.mixing.weights), for dedup the key of an
identity and of its copies (snakeshuf.mixing.dedup) and a table row's identity, its
encoding (snakeshuf.records.rows, itself checked by tests/test_rows.py); everything else is
written here from the documentation, as plainly as possible, and kept small
enough to check by reading.
"""

import csv
import json
import math
import os
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pyarrow as pa

from snakeshuf.mixing.dedup import copy_keys, identity_keys
from snakeshuf.mixing.weights import copy_stream, selection_keys
from snakeshuf.planning.keys import record_keys
from snakeshuf.records.rows import encode

SEPARATORS = {"newline": b"\n", "nul": b"\0"}
COMPRESSED_SUFFIXES = (".gz", ".zst")


class Refused(Exception):
    """A correct run publishes nothing; the message is part of what it must say."""


def records_of(data, sep):
    """(offsets, records) of one input: a record ends after each separator; a
    last record without its separator gets one."""
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == sep[0]) + 1
    if len(data) > (ends[-1] if len(ends) else 0):
        ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1]))[: len(ends)].astype(np.int64)
    records = [data[s:e] for s, e in zip(starts.tolist(), ends.tolist())]
    if records and not records[-1].endswith(sep):
        records[-1] += sep
    return starts, records


class Keyed:
    """Items with their sort keys: (key, stream, position) orders them."""

    def __init__(self):
        self.keys, self.streams, self.positions, self.items = [], [], [], []

    def add(self, keys, stream, positions, items):
        """`items` of key stream `stream` whose keys are given."""
        self.keys.append(np.asarray(keys, np.uint64))
        self.streams.append(np.full(len(items), stream, np.int64))
        self.positions.append(np.asarray(positions, np.int64))
        self.items += items

    def in_key_order(self):
        if not self.items:
            return []
        columns = [np.concatenate(c) for c in (self.positions, self.streams, self.keys)]
        return [self.items[i] for i in np.lexsort(columns)]  # the last column sorts first


def check_lengths(records, limit):
    longest = max(map(len, records), default=0)
    if longest > limit:
        raise Refused(f"is {longest} bytes long")


def single_file_records(config, contents, limit):
    """(header, [(key stream, positions, records)]) of ordinary inputs: a
    record is keyed by its file and byte offset; every input starts with the
    same header, kept out."""
    sep, lines = SEPARATORS[config["separator"]], config["header_lines"]
    header, streams = None, []
    for index, data in enumerate(contents):
        offsets, records = records_of(data, sep)
        if len(records) < lines:
            raise Refused(f"fewer than header_lines={lines}")
        this_header = b"".join(records[:lines])
        if header is not None and this_header != header:
            raise Refused("start with different headers")
        header = this_header
        check_lengths(records[lines:], limit)
        streams.append((index, offsets[lines:], [(r,) for r in records[lines:]]))
    return header or b"", streams


def table_records(config, contents, limit):
    """The rows of tables, each a record keyed by its table and row number;
    the header is the first table's schema, where pandas' description no
    longer numbers the rows by a RangeIndex (their labels were positions)."""
    if not all(table.schema.equals(contents[0].schema, check_metadata=False) for table in contents):
        raise Refused("has another schema")  # metadata may differ: the first table's are kept
    header = contents[0].slice(0, 0)
    if b"pandas" in (header.schema.metadata or {}):
        pandas = json.loads(header.schema.metadata[b"pandas"])
        pandas["index_columns"] = [i for i in pandas["index_columns"] if not isinstance(i, dict)]
        header = header.replace_schema_metadata({**header.schema.metadata, b"pandas": json.dumps(pandas).encode()})
    return header, [
        (index, range(table.num_rows), [(table.slice(i, 1),) for i in range(table.num_rows)])
        for index, table in enumerate(contents)
    ]


def joined(header, records):
    """An output file's content: the header and the records (bytes), or the rows (a table)."""
    if isinstance(header, bytes):
        return header + b"".join(records)
    return pa.concat_tables([header, *records])


def paired_records(config, contents, limit):
    """The records of aligned inputs: line i of every file of a group, keyed
    by the group and i."""
    sep, width = SEPARATORS[config["separator"]], len(config["paired"][0])
    streams = []
    for group in range(len(contents) // width):
        files = [records_of(data, sep)[1] for data in contents[group * width : (group + 1) * width]]
        if len({len(lines) for lines in files}) > 1:
            raise Refused("are not aligned")
        for lines in files:
            check_lengths(lines, limit // width)
        rows = list(zip(*files))
        streams.append((group, range(len(rows)), rows))
    return b"", streams


def weight_of(config, source):
    weight = config["weights"].get(source, 1)
    return Fraction(repr(weight)) if isinstance(weight, float) else Fraction(weight)


def identity_of(dedup, record, header, name):
    """What makes a record of the file `name` a duplicate (documented under
    config key 'dedup'); None: it has no such field."""
    if not isinstance(record, bytes):  # a table's row: what defines its key is its encoding, as for the workflow
        return row_identity(dedup, record)
    if dedup == "record":
        return record
    body = record[:-1]
    extension = os.path.splitext(name.removesuffix(".gz").removesuffix(".zst"))[1]
    field, form = dedup["field"], dedup.get("format") or {".jsonl": "jsonl", ".tsv": "tsv", ".csv": "csv"}[extension]
    if form == "jsonl":
        try:
            value = json.loads(body, parse_float=Decimal, parse_int=Decimal)
        except ValueError:
            raise Refused("is not JSON") from None
        if not isinstance(value, dict):
            raise Refused("is not a JSON object")
        return same_value(value[str(field)]).encode() if str(field) in value else None
    split = (lambda line: line.split(b"\t")) if form == "tsv" else \
        (lambda line: [f.encode() for f in next(csv.reader([line.decode("utf-8", "surrogateescape")]))])
    column = field - 1 if isinstance(field, int) else split(header.splitlines()[0]).index(field.encode())
    fields = split(body.rstrip(b"\r"))
    return fields[column] if column < len(fields) else None


def row_identity(dedup, row):
    """A one-row table's identity: the row's encoding, or its column's (by name
    or number from 1); None where that value is null."""
    if dedup != "record":
        field = dedup["field"]
        row = row.select([field - 1 if isinstance(field, int) else field])
    data, _ = encode(row.combine_chunks().to_batches()[0])
    return None if data.tobytes() == b"\0" else data.tobytes()


def same_value(value):
    """A text that two JSON values share exactly when they are equal: numbers
    by exact value (Decimal; 1 == 1.0), strings escaped to ASCII, keys sorted."""
    if isinstance(value, Decimal):
        if value == 0:
            return "0"
        sign, digits, exponent = value.as_tuple()
        text = "".join(map(str, digits)).lstrip("0")
        trimmed = text.rstrip("0")
        return ("-" if sign else "") + f"{trimmed}e{exponent + len(text) - len(trimmed)}"
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + same_value(value[k]) for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(same_value, value)) + "]"
    return json.dumps(value)


def deduplicated(config, streams, sources, header):
    """([(key stream, positions, records)], their sources, [their copy-0 keys]) of
    the records dedup keeps: of each identity, the one in the source of the
    largest weight, and of those the first in input order, keyed by its
    identity; a record without the field as 'missing' says (kept: keyed as
    any record). A source of weight 0 is never read."""
    dedup, seen, seed = config["dedup"], set(), config["seed"]
    missing = dedup.get("missing", "error") if isinstance(dedup, dict) else "error"
    kept = {}
    by_weight = sorted(range(len(streams)), key=lambda i: -weight_of(config, sources[i]))  # stable
    for i in by_weight:
        (stream, positions, items), source = streams[i], sources[i]
        if weight_of(config, source) == 0:
            continue
        kept[i] = []
        for position, item in zip(positions, items):
            identity = identity_of(dedup, item[0] if len(item) == 1 else b"".join(item), header, source or "")
            if identity is None and missing == "error":
                raise Refused("has no field")
            if identity is None and missing == "keep":
                kept[i].append((record_keys(seed, stream, np.uint64(position)), position, item))
            elif identity is not None and identity not in seen:
                seen.add(identity)
                kept[i].append((identity_keys(seed, [identity])[0][0], position, item))
    kept = sorted(kept.items())
    return ([(streams[i][0], [p for _, p, _ in found], [item for _, _, item in found]) for i, found in kept],
            [sources[i] for i, _ in kept],
            [np.array([k for k, _, _ in found], np.uint64) for _, found in kept])


def keyed_copies(config, streams, sources, first_keys=None):
    """Every copy the weights ask for, keyed: floor(w) copies of each record of
    a source of weight w, copy c in key stream copy_stream(stream, c) (after
    dedup, its copy-0 key from `first_keys`, mixed by dedup.copy_keys); and of
    its n records the round(frac(w) x n) (a half up) whose next copy has the
    smallest selection keys, that copy too (equal ones: the first in input order)."""
    seed, keyed, candidates = config["seed"], Keyed(), {}
    for (stream, positions, items), source, keys in zip(streams, sources, first_keys or [None] * len(streams)):
        weight = weight_of(config, source)
        positions = np.asarray(positions, np.uint64)

        def keys_of(copy):
            if keys is None:
                return record_keys(seed, copy_stream(stream, copy), positions)
            return copy_keys(seed, keys, copy)

        for copy in range(math.floor(weight)):
            keyed.add(keys_of(copy), copy_stream(stream, copy), positions, items)
        if weight != math.floor(weight):
            next_stream, next_keys = copy_stream(stream, math.floor(weight)), keys_of(math.floor(weight))
            candidates.setdefault(source, []).extend(
                (int(u), next_stream, int(p), int(k), item)
                for u, p, k, item in zip(selection_keys(next_keys), positions, next_keys, items)
            )
    for source, found in candidates.items():
        fraction = weight_of(config, source) % 1
        chosen = sorted(found, key=lambda c: c[:3])[: math.floor(fraction * len(found) + Fraction(1, 2))]
        for _, stream, position, key, item in chosen:
            keyed.add([key], stream, [position], [item])
    return keyed


def splits_asked(config):
    """{split name: (size, shards)} as configured: a size is a count, a fraction or 'rest'."""
    return {
        name: (value["size"], value.get("shards", 1)) if isinstance(value, dict) else (value, 1)
        for name, value in config["splits"].items()
    }


def check_fractions(config):
    """Fractions (read as the decimals written) adding up to more than 1 are a
    configuration error, whatever the inputs hold."""
    if sum(Fraction(repr(size)) for size, _ in splits_asked(config).values() if isinstance(size, float)) > 1:
        raise Refused("the fractions add up to")


def split_sizes(config, total):
    """[(split name, records, shards)] in output order. The fraction splits,
    in order, end at round(total x the fractions so far), a half rounding up."""
    if not config["splits"]:
        return [("", total, config["shards"])]
    asked, rest, so_far = {}, None, Fraction(0)
    for name, (size, shards) in splits_asked(config).items():
        if size == "rest":
            rest = name
            size = 0
        elif isinstance(size, float):
            before = math.floor(so_far * total + Fraction(1, 2))
            so_far += Fraction(repr(size))
            size = math.floor(so_far * total + Fraction(1, 2)) - before
        asked[name] = [size, shards]
    if sum(size for size, _ in asked.values()) > total:
        raise Refused("the splits ask for")
    if rest is not None:
        asked[rest][0] += total - sum(size for size, _ in asked.values())
    return [(name, size, shards) for name, (size, shards) in asked.items()]


def stem_and_suffix(output):
    """'d/c.jsonl.zst' -> ('d/c', '.jsonl.zst'): the compression suffix keeps
    the extension before it."""
    stem, suffix = os.path.splitext(output)
    if suffix in COMPRESSED_SUFFIXES:
        stem, inner = os.path.splitext(stem)
        suffix = inner + suffix
    return stem, suffix


def column_names(config):
    """Aligned inputs: the first group's extensions when they tell the files
    apart, else 0, 1, ..."""
    names = [stem_and_suffix(os.path.basename(path))[1].split(".")[1:2] for path in config["paired"][0]]
    names = [n[0] if n else "" for n in names]
    if all(names) and len(set(names)) == len(names):
        return names
    return [str(c) for c in range(len(names))]


def output_names(config):
    """Every output file's name, in output order: the layout alone decides them."""
    paired = bool(config["paired"])
    if not config["splits"] and config["shards"] == 1 and not paired:
        return [config["output"]]
    stem, suffix = stem_and_suffix(config["output"])
    splits = splits_asked(config) if config["splits"] else {"": (None, config["shards"])}
    names = []
    for split, (_, shards) in splits.items():
        for shard in range(shards):
            name = stem + (f".{split}" if split else "") + (f".{shard:05d}-of-{shards:05d}" if shards > 1 else "")
            names += [name + (f".{column}" if column is not None else "") + suffix
                      for column in (column_names(config) if paired else [None])]
    return names


def check_written_once(config, names):
    """A run writes no file twice: each output, its unfinished '.partial', and
    the output's summary (and its '.partial') and lock are all different files."""
    output = config["output"]
    written = [*names, *(n + ".partial" for n in names), output + ".summary.json", output + ".summary.json.partial",
               output + ".lock"]
    seen = set()
    for name in written:
        if os.path.normpath(name) in seen:
            raise Refused(f"the run would write '{name}' twice")
        seen.add(os.path.normpath(name))


DEFAULTS = {"seed": 42, "separator": "newline", "header_lines": 0, "paired": [], "shards": 1, "splits": {},
            "head": None, "fraction": None, "weights": {}, "dedup": "none"}


def published(config, ordered):
    """The part of the order a run publishes: all of it, the first 'head'
    records, or the first 'fraction' of them (round half up, the decimal written)."""
    if config["head"] is not None:
        return ordered[: config["head"]]
    if config["fraction"] is not None:
        return ordered[: math.floor(Fraction(repr(config["fraction"])) * len(ordered) + Fraction(1, 2))]
    return ordered


def expected_outputs(config, contents, max_record_bytes=2**32 - 1, sources=None):
    """{output path: uncompressed bytes} of a correct run, in output order.
    `max_record_bytes`: the longest record (with its separator) the run's
    memory allows, as the documentation states it; `sources`: the source of
    each input file (aligned inputs: each group's first file's path; None: the
    same for all, a weight of 1)."""
    config = {**DEFAULTS, **config}
    check_fractions(config)  # the configuration is checked before any input is read
    if config["head"] is not None and config["fraction"] is not None:
        raise Refused("'head' and 'fraction' are both set")
    names = output_names(config)
    check_written_once(config, names)
    paired = bool(config["paired"])
    make = paired_records if paired else table_records if contents and isinstance(contents[0], pa.Table) \
        else single_file_records
    header, streams = make(config, contents, max_record_bytes)
    if paired:
        sources = [group[0] for group in config["paired"]]
    sources = sources or [None] * len(streams)
    if config["dedup"] != "none":
        keyed = keyed_copies(config, *deduplicated(config, streams, sources, header))
    else:
        keyed = keyed_copies(config, streams, sources)
    ordered = published(config, keyed.in_key_order())
    columns = len(config["paired"][0]) if paired else 1
    pieces, start = [], 0
    for split, size, shards in split_sizes(config, len(ordered)):
        records = ordered[start : start + size]
        start += size
        for shard in range(shards):
            piece = records[shard * size // shards : (shard + 1) * size // shards]
            pieces += [joined(header, [row[c] for row in piece]) for c in range(columns)]
    return dict(zip(names, pieces, strict=True))
