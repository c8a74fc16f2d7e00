"""Exact deduplication (config key 'dedup'): one copy of each distinct record,
or of each distinct value of a field: the one in the source of the largest
weight, and of those the first in input order (so a record keeps the weight
of the most upsampled source that has it, and a source of weight 0, never
read, removes nothing). The weights then apply to the distinct records.

A record's identity is its bytes (with its separator, which every record
has: a last one without gets one), or the value of a
JSONL record's top-level field (in a canonical JSON form: {"a": 1} and
{"a":1} agree) or of a TSV/CSV column. A keyed hash of the identity
(BLAKE2b from hashlib, keyed by the seed: standard, so the order never
depends on a library's version) gives the record's sort key and a second 64
bits, its tag: equal identities get equal keys, so
duplicates meet in one key range, and the output is a uniform order of the
distinct ones. Copy c > 0 of a record (weights) is keyed by mixing its key in
a stream of copy c's (copy_keys): its duplicates' copies c meet too, and as
the survivor has the largest weight, it has a copy wherever a duplicate has.
Records whose keys and tags agree are duplicates, confirmed on their bytes
by the bucket job (128 bits that agree on different identities stop the
run, loudly: no record is ever dropped for a hash).

Duplicates are dropped three times over, each keeping the survivor: by the split
job within each spill (bounding the copies of a key to one per spill), by
rule tally_buckets, which counts what each key range publishes so that the
bucket jobs know where their records go, and by the bucket jobs, which
confirm and write.
"""

import csv
import json
import os
from dataclasses import dataclass
from decimal import Decimal
from hashlib import blake2b

import numpy as np

from snakeshuf.errors import ConfigError, InputError, IntegrityError
from snakeshuf.planning import keys as keylib
from snakeshuf.sources.reading import open_input
from snakeshuf.stages import runindex

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".tsv": "tsv", ".csv": "csv"}
# Key streams apart from every file's and copy's (snakeshuf.mixing.weights): the
# BLAKE2b key of a seed, and the tag of a record kept whatever its identity
# ('missing: keep'), which keeps its file's key.
HASH_KEY_STREAM = 1 << 62
KEPT_STREAM_BASE = 1 << 61
COPY_STREAM_BASE = HASH_KEY_STREAM + 1  # + copy c: the stream keying copy c > 0 of a record


@dataclass(frozen=True)
class Dedup:
    """What makes two records the same: their bytes (field None), or a field."""

    field: object = None  # a JSONL key, a TSV/CSV column name, or a column number from 1
    format: str = None  # jsonl | tsv | csv; None: from each input's name
    missing: str = "error"  # a record without the field: error | keep | drop

    def to_json(self):
        return {"field": self.field, "format": self.format, "missing": self.missing}


def read_config(value):
    """A Dedup from config key 'dedup' (checked by the schema), or None."""
    if value in (None, "none", False):
        return None
    if value == "record":
        return Dedup()
    return Dedup(value["field"], value.get("format"), value.get("missing", "error"))


def format_of(dedup, path, shown=None):
    """The record format a field is read from: configured, by the input's
    extension, or JSONL for a plain file that starts with '{' (a pipe's copy
    has no extension); `shown`: the input's name in an error."""
    if dedup.format:
        return dedup.format
    name = os.path.basename(path)
    for suffix in (".gz", ".zst", ".bz2", ".xz"):
        name = name.removesuffix(suffix)
    found = FORMATS.get(os.path.splitext(name)[1].lower())
    if found is None and starts_an_object(path):
        found = "jsonl"
    if found is None:
        raise ConfigError(
            f"config key 'dedup' reads field {dedup.field!r}, but input '{shown or path}' is not named .jsonl, "
            ".tsv or .csv: say which it is with dedup: {field: ..., format: jsonl|tsv|csv}"
        )
    return found


def starts_an_object(path):
    try:
        with open_input(path) as handle:
            return handle.read(64).removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"{")
    except OSError:
        return False


def hash_key(seed):
    """The 16-byte BLAKE2b key of a seed."""
    return keylib.record_keys(seed, HASH_KEY_STREAM, np.arange(2, dtype=np.uint64)).tobytes()


def copy_keys(seed, keys, copy):
    """The keys of copy `copy` of the records whose copy 0 has `keys`."""
    return keys if copy == 0 else keylib.record_keys(seed, COPY_STREAM_BASE + copy, keys)


def survivor_ranks(spec):
    """Each input file's rank among the duplicates of its records: 0 for the
    sources of the largest weight, 1 for the next, ... (equal weights, equal
    ranks: there input order decides); None where all read sources rank alike."""
    weights = sorted({s.copies.weight for s in spec.sources if s.copies.weight}, reverse=True)
    if len(weights) < 2:
        return None
    rank = {weight: i for i, weight in enumerate(weights)}
    return np.array([rank.get(spec.sources[f.source].copies.weight, 0) for f in spec.files], np.int32)


def ranks_of(ranks, files):
    """The survivor_ranks of records from input `files` (None: all alike)."""
    return None if ranks is None else ranks[files]


def kept_tags(seed, stream, positions):
    """Tags of records kept whatever their identity: unlike any other record's."""
    return keylib.record_keys(seed, KEPT_STREAM_BASE + stream, positions)


def identity_keys(seed, identities):
    """(sort keys, tags) of records of these identities (a list of bytes): the
    two little-endian halves of each one's 16-byte keyed BLAKE2b digest."""
    key = hash_key(seed)
    digests = b"".join(blake2b(identity, key=key, digest_size=16).digest() for identity in identities)
    words = np.frombuffer(digests, "<u8").reshape(-1, 2).astype(np.uint64)
    return words[:, 0].copy(), words[:, 1].copy()


class Identities:
    """The identities of one input file's records (a field's, read as `format`)."""

    def __init__(self, dedup, path, header):
        self.dedup, self.path = dedup, path
        self.format = format_of(dedup, path) if dedup.field is not None else None
        self.column = self.column_of(header) if self.format in ("tsv", "csv") else None

    def column_of(self, header):
        field = self.dedup.field
        if isinstance(field, int):
            return field - 1
        names = self.split_fields(header.rstrip(b"\r\n\0"))
        if field.encode() not in names:
            raise InputError(
                f"config key 'dedup': input '{self.path}' has no column {field!r} in its header "
                f"({', '.join(n.decode(errors='replace') for n in names)}); name a column, or give its number from 1"
            )
        return names.index(field.encode())

    def split_fields(self, line):
        if self.format == "tsv":
            return line.split(b"\t")
        try:
            return [f.encode("utf-8", "surrogateescape")
                    for f in next(csv.reader([line.decode("utf-8", "surrogateescape")], strict=True))]
        except csv.Error as error:
            raise BadRecord(f"is not a CSV row ({error})") from None

    def of(self, record):
        """The identity of a record (given with its separator), or None if it has no such field."""
        if self.format is None:
            return record
        body = record[:-1]
        if self.format == "jsonl":
            return self.json_field(body)
        fields = self.split_fields(body.rstrip(b"\r"))
        return fields[self.column] if self.column < len(fields) else None

    def json_field(self, body):
        try:
            value = json.loads(body, parse_int=Number, parse_float=Number, parse_constant=not_json)
        except RecursionError:
            raise BadRecord("nests too deep to read") from None
        except ValueError as error:
            raise BadRecord(f"is not JSON ({error})") from None
        if not isinstance(value, dict):
            raise BadRecord("is not a JSON object")
        field = str(self.dedup.field)
        if field not in value:
            return None
        try:
            return canonical_json(value[field]).encode()
        except RecursionError:
            raise BadRecord("nests too deep to read") from None


class Number(str):
    """A JSON number as written: compared by its exact value, never as a float."""


def not_json(constant):
    raise ValueError(f"{constant} is not a JSON value")


def canonical_json(value):
    """One text for each JSON value: keys sorted, strings escaped to ASCII,
    numbers by their exact value (1, 1.0 and 1e0 agree; 0.1 and
    0.10000000000000001 do not)."""
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + canonical_json(value[k]) for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, Number):
        return canonical_number(value)
    return json.dumps(value)  # a string, true, false or null


def canonical_number(text):
    """'-1.50e2' -> '-15e1': digits without trailing zeros, and an exponent (exact: no rounding)."""
    sign, digits, exponent = Decimal(text).as_tuple()
    digits = "".join(map(str, digits)).lstrip("0")
    if not digits:
        return "0"
    stripped = digits.rstrip("0")
    return f"{'-' if sign else ''}{stripped}e{exponent + len(digits) - len(stripped)}"


class BadRecord(Exception):
    """A record a field cannot be read from (the split job names its file and line)."""


def line_number(stream, offset, separator):
    """The 1-based number of the record starting at byte `offset` of a stream (for errors only)."""
    count, done = 1, 0
    while done < offset:
        block = stream.read(min(1 << 20, offset - done))
        if not block:
            break
        count += block.count(bytes([separator]))
        done += len(block)
    return count


def first_of_each(keys, tags, ranks=None):
    """The indices of the first record of each distinct (key, tag) pair, in input order."""
    return np.sort(duplicates_and_firsts(keys, tags, ranks)[2])


def duplicates_and_firsts(keys, tags, ranks=None):
    """(each later record of a (key, tag) pair, the first record of its pair,
    the first record of every pair): indices in input order. First: of the
    lowest of `ranks` (each record's survivor_ranks; None: all equal), then
    first in input order."""
    columns = (tags, keys) if ranks is None else (ranks, tags, keys)
    order = np.lexsort(columns)  # stable: equal pairs of a rank stay in input order
    sorted_keys, sorted_tags = keys[order], tags[order]
    new = np.ones(len(order), bool)
    new[1:] = (sorted_keys[1:] != sorted_keys[:-1]) | (sorted_tags[1:] != sorted_tags[:-1])
    group_start = np.maximum.accumulate(np.where(new, np.arange(len(order)), 0))
    return order[~new], order[group_start[~new]], order[new]


def confirm(later, first_of_later, identity_of, where):
    """Each later record of a (key, tag) pair has its first record's identity:
    128 bits that agree on different ones stop the run (no drop on a hash)."""
    for i, j in zip(later.tolist(), first_of_later.tolist()):
        if identity_of(i) != identity_of(j):
            raise IntegrityError(
                f"{where}two different records share a 128-bit dedup hash (about 1 in 10^20 per pair); "
                "run again with another seed"
            )


class Keeper:
    """A bucket job's deduplication: of the records of a key range (or a
    pass of one), the first of each (key, tag) pair, each later one checked
    to have the first one's identity."""

    def __init__(self, spec):
        self.spec, self.identities, self.ranks = spec, {}, survivor_ranks(spec)

    def published(self, loaded, files):
        """The indices of the records kept (None: all); `loaded`: keys,
        lengths, data and tags; `files`: each record's input file."""
        keys, lengths, data, tags = loaded
        later, first_of_later, firsts = duplicates_and_firsts(keys, tags, ranks_of(self.ranks, files))
        if not len(later):
            return None
        offsets = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
        confirm(later, first_of_later, lambda i: self.identity(files[i], data, offsets, i), "")
        return np.sort(firsts)

    def identity(self, file, data, offsets, i):
        if file not in self.identities:
            self.identities[file] = self.spec.records.identities(self.spec.files[file].path)
        return self.identities[file].of(data[offsets[i] : offsets[i + 1]].tobytes())


# Rule tally_buckets holds a key range's keys, tags, lengths, files and
# candidates, and their sort order, at a time: more than its memory takes
# passes over key sub-ranges (equal keys share one).
TALLY_BYTES_PER_RECORD = 128  # the columns, read in pieces and joined, and the sort's arrays (measured: 101-119)
STAGING_BYTES = 1 << 20


@dataclass
class Distinct:
    """What a run that deduplicates publishes: per key range, the records,
    bytes and key checksum of the first of each (key, tag) pair (of
    candidates, those chosen); per source, the duplicates dropped after the
    split jobs and the choice among its candidates (selection.SOURCE_COLUMNS)."""

    ranges: np.ndarray  # (key ranges, 3) uint64
    dropped: np.ndarray  # (sources,) int64
    read: np.ndarray  # (1,) int64: the bytes of every record the split jobs wrote
    sources: np.ndarray  # (sources, selection.SOURCE_COLUMNS) uint64

    def save(self, handle):
        np.savez(handle, ranges=self.ranges, dropped=self.dropped, read=self.read, sources=self.sources)

    @classmethod
    def load(cls, path):
        with np.load(path) as data:
            return cls(data["ranges"], data["dropped"], data["read"], data["sources"])

    def chooser(self):
        from snakeshuf.mixing.selection import Chooser

        return Chooser(self.sources)

    @property
    def unchosen_bytes(self):
        """The bytes the split jobs wrote that are not published (duplicates, candidates not chosen)."""
        return int(self.read[0]) - int(self.ranges[:, 1].sum())


def count_distinct(spec, memory):
    """The Distinct of a run, from its run files' keys, tags and lengths (20
    bytes a record): read once, and once more where candidates are chosen
    (snakeshuf.mixing.selection, among the first of each pair only; its first read
    is the count's)."""
    from snakeshuf.mixing import selection

    distinct = Distinct(np.zeros((spec.key_ranges, 3), np.uint64), np.zeros(len(spec.sources), np.int64),
                        np.zeros(1, np.int64), np.zeros((len(spec.sources), len(selection.SOURCE_COLUMNS)), np.uint64))
    sources = np.array([f.source for f in spec.files], np.int64)
    counting = first_candidates(spec, memory, lambda *passed: count_pass(distinct, sources, *passed))
    if spec.selects:
        reads = iter([counting, first_candidates(spec, memory)])
        chosen = selection.choose(spec, lambda: next(reads))
        distinct.sources, distinct.ranges = chosen.sources, distinct.ranges + chosen.ranges
    else:
        for _ in counting:
            pass
    # A duplicate's every copy is dropped (the survivor has a copy wherever it has one).
    distinct.dropped //= np.array([max(1, s.copies.written) for s in spec.sources], np.int64)
    return distinct


def count_pass(distinct, sources, key_range, found, first):
    """Add what a pass publishes, but for candidates, and what it drops to `distinct`."""
    keys, _, lengths, files, candidates_of = found
    distinct.read[0] += int(lengths.sum(dtype=np.uint64))
    published = first[candidates_of[first] == 0]
    runindex.add_totals(distinct.ranges, key_range, keys[published], lengths[published])
    distinct.dropped += np.bincount(sources[np.delete(files, first)], minlength=len(distinct.dropped))


def first_candidates(spec, memory, count=None):
    """(source, key range, keys, lengths) of the candidates that are the first
    of their pair; `count`, if any, is called with each pass first."""
    for passed in distinct_passes(spec, memory):
        if count:
            count(*passed)
        chosen = candidates_in(*passed)
        del passed  # nothing of a pass is held while the next is read
        yield from chosen


def candidates_in(key_range, found, first):
    """A pass's first candidates, as first_candidates gives them (copies of the pass's arrays)."""
    keys, _, lengths, _, candidates_of = found
    first = first[candidates_of[first] > 0]
    return [(candidate_of - 1, key_range, keys[these], lengths[these])
            for candidate_of in np.unique(candidates_of[first]).tolist()
            for these in [first[candidates_of[first] == candidate_of]]]


def distinct_passes(spec, memory):
    """(key range, (keys, tags, lengths, files, candidates_of), the first of
    each pair) of every key range, or sub-range of one, that fits in memory;
    the caller holds none of a pass when it asks for the next."""
    from snakeshuf.stages.directio import aligned_buffer

    staging, ranks = aligned_buffer(STAGING_BYTES), survivor_ranks(spec)
    for bucket in range(spec.buckets):
        for part, sections in enumerate(runindex.bucket_sections(spec, bucket)):
            records = sum(int(rows[:, runindex.RECORDS].sum()) for _, rows in sections)
            passes = max(1, -(-records * TALLY_BYTES_PER_RECORD // memory.usable_bytes))
            for one in range(passes):
                found = read_pass(sections, (spec.key_ranges, passes, one), staging)
                passed = (bucket * spec.parts + part, found, first_of_each(found[0], found[1], ranks_of(ranks, found[3])))
                del found
                yield passed
                del passed


def read_pass(sections, sub_range, staging):
    """(keys, tags, lengths, input files, candidates_of) of the records of
    `sections` in key sub-range `one` of `passes` of the key ranges
    (`sub_range`), in read order."""
    from snakeshuf.stages import runfile  # imports Arrow, which a job reading a Distinct need not
    from snakeshuf.stages.directio import DirectReader

    key_ranges, passes, one = sub_range
    found = []
    for run, rows in sections:
        with DirectReader(run, staging) as reader:
            for row in rows:
                keys, lengths = runfile.read_keys_and_lengths(reader, row)
                tags = runfile.read_tags(reader, row)
                mask = keylib.sub_range_of(keys, key_ranges, passes) == one if passes > 1 else slice(None)
                n = len(keys[mask])
                found.append((keys[mask], tags[mask], lengths[mask], np.full(n, int(row[runindex.FILE]), np.int32),
                              np.full(n, int(row[runindex.CANDIDATES_OF]), np.int32)))
    if not found:
        return (np.empty(0, np.uint64),) * 2 + (np.empty(0, np.uint32), np.empty(0, np.int32), np.empty(0, np.int32))
    return tuple(np.concatenate(column) for column in zip(*found))
