"""Random corpora and configurations for the differential tests, as small
descriptions (Hypothesis shrinks these) that turn into files deterministically.

A Scenario is one corpus, one output layout and two runs of the workflow that
differ in everything that must not matter (memory, chunking, cores, the size
of a memory unit). Bytes are made with NumPy from a seed: Hypothesis draws
kilobytes of choices at most, and a corpus is up to a few hundred kilobytes.
"""

import bz2
import gzip
import io
import lzma
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml
import zstandard
from hypothesis import strategies as st

from reference import SEPARATORS
from tables import NARROW_SCHEMA_SEEDS, seeded_table

PROFILES = ("empty", "tiny", "short", "mixed")
CODECS = ("plain", "gzip", "bzip2", "xz", "zstd")
BASE_MB = 128  # documented: the longest record is (memory_mb - 128) / 4 MiB
NAME_STYLES = ("plain", "odd")
# The workflow's profile retries a failed job with memory_mb x attempt: a split
# job that meets a record too long for its memory passes on the last attempt.
PROFILE = Path(__file__).resolve().parent.parent / "profiles" / "default" / "config.yaml"
ATTEMPTS = 1 + yaml.safe_load(PROFILE.read_text())["retries"]
ODD_NAMES = ("with space", "quote's", "[bracket]", "ünï ✓", "$(x)", "semi;colon", "dash-", "star*")


@dataclass(frozen=True)
class FileSpec:
    """One input file's records: how many, how long, and how it ends."""

    records: int
    profile: str = "short"
    seed: int = 0
    final_separator: bool = True
    crlf: bool = False
    codec: str = "plain"
    long: tuple = ()  # lengths (with the separator) of extra long records


@dataclass(frozen=True)
class Run:
    """What must not change the output."""

    memory_mb: int = 160
    unit: int = 4096  # bytes per MiB of memory_mb (SNAKESHUF_MIB_BYTES)
    chunks: int = 0  # chunk_mb giving about this many chunks; 0: auto
    cores: int = 2

    @property
    def max_record_bytes(self):
        """The longest record (with its separator) a first attempt's memory allows."""
        return record_limit(self.memory_mb, self.unit)

    @property
    def accepted_record_bytes(self):
        """The longest record the run accepts: its last attempt's limit."""
        return record_limit(self.memory_mb * ATTEMPTS, self.unit)


def record_limit(memory_mb, unit):
    return min((memory_mb - BASE_MB) * unit // 4, 2**32 - 1)


@dataclass(frozen=True)
class Scenario:
    files: tuple  # of FileSpec; with paired_width, one per group
    runs: tuple = (Run(), Run(memory_mb=200, unit=2048, chunks=3, cores=1))
    seed: int = 42
    separator: str = "newline"
    header_lines: int = 0
    header_mismatch: bool = False
    paired_width: int = 0
    misaligned: bool = False
    output: str = "out/shuffled.txt"
    shards: int = 1
    splits: tuple = ()  # (name, size, shards)
    source: str = "list"  # list | glob | sheet
    names: str = "plain"
    verify: str = "changed"
    earlier_run: bool = False  # another seed's run on the first run's output path, from another directory
    take: tuple = ()  # ("head", N) or ("fraction", p): publish only the first part of the order
    weights: tuple = ()  # one per source (a file, the glob, a sheet's source, a group); none: all 1
    dedup: str = "none"  # or "record" (random bytes have no fields); tables also "column:MISSING", "number:MISSING"
    table: int = 0  # nonzero: the inputs are Parquet files of a schema made from this seed (tables.seeded_table)
    objects: bool = False  # the inputs are read from object storage (s3://), not from disk
    object_output: bool = False  # the output is written to object storage (s3://), not to disk
    row_group_rows: int = 100_000  # of Parquet outputs; row groups of at most 1 MiB, which a kilobyte budget allows


SHEET_SOURCES = 3  # a sample sheet's rows belong to sources s0, s1, s2 in turn


def source_names(scenario, input_dir):
    """The name of each input file's source (aligned inputs: of each group), in order."""
    names = [name for name, _, _ in input_files(scenario)]
    if scenario.paired_width:
        return [os.path.join(input_dir, name) for name in names[:: scenario.paired_width]]
    if scenario.source == "glob":
        return [os.path.join(input_dir, "*")] * len(names)
    if scenario.source == "sheet":
        return [f"s{i % SHEET_SOURCES}" for i in range(len(names))]
    return [os.path.join(input_dir, name) for name in names]


def weight_of(scenario, source_index):
    return scenario.weights[source_index % len(scenario.weights)] if scenario.weights else 1


def weights_by_source(scenario, input_dir):
    """{source: weight} as the run is given them (the sheet's column or config key 'weights')."""
    sources = dict.fromkeys(source_names(scenario, input_dir))
    return {source: weight_of(scenario, i) for i, source in enumerate(sources)} if scenario.weights else {}


def sheet_text(scenario, input_dir):
    """A sample sheet listing the inputs, with their sources and weights."""
    rows = ["path\tsource\tweight"]
    for i, (name, _, _) in enumerate(input_files(scenario)):
        weight = weight_of(scenario, i % SHEET_SOURCES) if scenario.weights else ""
        rows.append(f"{input_dir}/{name}\ts{i % SHEET_SOURCES}\t{weight}")
    return "\n".join(rows) + "\n"


def record_lengths(spec, rng):
    count = spec.records
    if spec.profile == "empty":
        lengths = np.where(rng.random(count) < 0.8, 0, rng.integers(1, 4, count))
    elif spec.profile == "tiny":
        lengths = rng.integers(0, 9, count)
    elif spec.profile == "short":
        lengths = rng.geometric(1 / 60, count)
    else:
        lengths = np.minimum(rng.lognormal(4.5, 1.2, count).astype(np.int64), 4000)
    lengths = list(lengths)
    for length in spec.long:  # with the separator
        lengths.insert(int(rng.integers(0, len(lengths) + 1)), length - 1)
    return lengths


def file_bytes(spec, sep, crlf_allowed):
    """The plain bytes of a file: random bytes (any but the separator) per record."""
    rng = np.random.default_rng(spec.seed)
    lengths = record_lengths(spec, rng)
    alphabet = np.array([b for b in range(256) if b != sep[0]], np.uint8)
    body = alphabet[rng.integers(0, len(alphabet), int(sum(lengths)))].tobytes()
    records, pos = [], 0
    for length in map(int, lengths):
        content = body[pos : pos + length]
        pos += length
        if spec.crlf and crlf_allowed and content:
            content = content[:-1] + b"\r"
        records.append(content + sep)
    data = b"".join(records)
    if not spec.final_separator and data.endswith(sep):
        data = data[:-1]
    return data


def with_line(data, line, sep):
    """`data` with one more record at its end."""
    return data + (sep if data and not data.endswith(sep) else b"") + line + sep


def compress(data, codec):
    if codec == "gzip":
        return gzip.compress(data, mtime=0)
    if codec == "bzip2":
        return bz2.compress(data)
    if codec == "xz":
        return lzma.compress(data)
    if codec == "zstd":
        cut = len(data) // 2  # two frames, as parallel compressors write
        compressor = zstandard.ZstdCompressor(write_checksum=True)
        return compressor.compress(data[:cut]) + compressor.compress(data[cut:])
    return data


def header_bytes(scenario, index):
    sep = SEPARATORS[scenario.separator]
    lines = [b"id\tfield %d" % line for line in range(scenario.header_lines)]
    if scenario.header_mismatch and index == len(scenario.files) - 1 and lines:
        lines[-1] += b" (other)"
    return b"".join(line + sep for line in lines)


def file_name(scenario, index, column=None):
    """Names sort in input order; odd ones carry shell and pattern characters."""
    odd = ODD_NAMES[index % len(ODD_NAMES)] if scenario.names == "odd" else "part"
    if column is None:
        return f"{index:03d} {odd}.txt" if scenario.names == "odd" else f"{index:03d}-{odd}.txt"
    extensions = ("de", "en", "fr")
    return f"{index:03d}-{odd}.{extensions[column]}"


def input_files(scenario):
    """[(name, plain bytes or table, stored bytes)] in input order."""
    if scenario.table:
        return [(file_name(scenario, i).replace(".txt", ".parquet"), *parquet_file(scenario.table, spec))
                for i, spec in enumerate(scenario.files)]
    sep = SEPARATORS[scenario.separator]
    crlf_allowed = scenario.separator == "newline"
    files = []
    if scenario.paired_width:
        for group, spec in enumerate(scenario.files):
            for column in range(scenario.paired_width):
                plain = file_bytes(
                    FileSpec(spec.records, spec.profile, spec.seed + column, spec.final_separator), sep, crlf_allowed
                )
                if scenario.misaligned and group == 0 and column == scenario.paired_width - 1:
                    plain = with_line(plain, b"one line too many", sep)
                files.append((file_name(scenario, group, column), plain, compress(plain, spec.codec)))
        return files
    for index, spec in enumerate(scenario.files):
        plain = header_bytes(scenario, index) + file_bytes(spec, sep, crlf_allowed)
        files.append((file_name(scenario, index), plain, compress(plain, spec.codec)))
    return files


def parquet_file(schema_seed, spec):
    """(table as a reader sees it, its bytes as a Parquet file): row groups,
    pages, compression and dictionaries chosen by the file's seed, none of
    which may matter."""
    table = seeded_table(schema_seed, spec.seed, spec.records)
    rng = np.random.default_rng(spec.seed)
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=int(rng.integers(1, 400)), data_page_size=int(rng.integers(64, 4096)),
                   compression=str(rng.choice(["zstd", "snappy", "none", "gzip"])), use_dictionary=bool(rng.integers(2)))
    return pq.read_table(io.BytesIO(sink.getvalue())), sink.getvalue()


def dedup_config(scenario):
    """Config key 'dedup': a table scenario's column (or its number) is its schema's first."""
    if ":" not in scenario.dedup:
        return scenario.dedup
    by, missing = scenario.dedup.split(":")
    first = seeded_table(scenario.table, 0, 0).column_names[0]
    return {"field": first if by == "column" else 1, "missing": missing}


def splits_config(scenario):
    splits = {}
    for name, size, shards in scenario.splits:
        splits[name] = {"size": size, "shards": shards} if shards > 1 else size
    return splits


def base_config(scenario, input_dir):
    """The configuration both runs share (paths relative to a run's directory)."""
    names = [name for name, _, _ in input_files(scenario)]
    config = {
        "output": scenario.output, "seed": scenario.seed, "separator": scenario.separator,
        "header_lines": scenario.header_lines, "shards": scenario.shards, "splits": splits_config(scenario),
        "verify_output": scenario.verify,
        **dict([scenario.take] if scenario.take else []),
        "dedup": dedup_config(scenario),
        **({"parquet": {"row_group_rows": scenario.row_group_rows, "row_group_mb": 1}} if scenario.table else {}),
    }
    paths = [os.path.join(input_dir, name) for name in names]
    if scenario.paired_width or scenario.source != "sheet":  # a sheet has a column for them
        config["weights"] = weights_by_source(scenario, input_dir)
    if scenario.paired_width:
        w = scenario.paired_width
        config["paired"] = [paths[i : i + w] for i in range(0, len(paths), w)]
    elif scenario.source == "glob":
        config["inputs"] = [os.path.join(input_dir, "*")]
    elif scenario.source == "sheet":
        config["sample_sheet"] = os.path.join("..", "sheet.tsv")  # beside the inputs' directory, on disk
    else:
        config["inputs"] = paths
    return config


def chunk_mb(run, total_bytes):
    """chunk_mb for about `run.chunks` chunks, or 'auto'; 'auto' too where the
    size would exceed a split job's index cap (a refusal of its own)."""
    if not run.chunks or not total_bytes:
        return "auto"
    wanted = math.ceil(total_bytes / run.chunks / run.unit)
    return wanted if wanted * run.unit <= run.max_record_bytes else "auto"


# --- strategies -----------------------------------------------------------

SEEDS = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**63, 2**64 - 1]))
RUNS = st.builds(
    Run,
    memory_mb=st.one_of(st.integers(160, 180), st.integers(160, 320)),
    unit=st.sampled_from([1024, 2048, 4096, 8192]),
    chunks=st.integers(0, 5),
    cores=st.integers(1, 2),
)


MEAN_LENGTH = {"empty": 0.6, "tiny": 4, "short": 60, "mixed": 150}
MAX_RECORDS = 20_000
CORPUS_KB = 256
COMPRESSED_KB = 8


@st.composite
def file_specs(draw, kb_each, long_limit):
    """A file of up to `kb_each` KiB, in records of one length profile."""
    profile, codec = draw(st.sampled_from(PROFILES)), draw(st.sampled_from(CODECS))
    # Planning counts a compressed file as 4x its size and refuses one whose
    # index would not fit a split job: at a memory unit of kilobytes, that is
    # a file of kilobytes.
    kb_each = kb_each if codec == "plain" else min(kb_each, COMPRESSED_KB)
    kb = draw(st.one_of(st.integers(0, 1), st.floats(kb_each / 2, kb_each), st.floats(0, kb_each)))
    spec = FileSpec(
        records=min(MAX_RECORDS, int(kb * 1024 / (1 + MEAN_LENGTH[profile]))),
        profile=profile,
        seed=draw(st.integers(0, 2**32 - 1)),
        final_separator=draw(st.booleans()),
        crlf=draw(st.booleans()),
        codec=codec,
    )
    if long_limit and codec == "plain" and draw(st.integers(0, 9)) == 0:  # compressed: see above
        spec = FileSpec(**{**spec.__dict__, "long": (long_limit - draw(st.integers(0, 2)),)})
    return spec


# 'lock' beside an output without an extension names the run's lock: refused.
SPLIT_NAMES = ("train", "valid", "test", "lock", "partial", "summary")


@st.composite
def layouts(draw):
    """(shards, splits) as the config gives them."""
    kind = draw(st.sampled_from(["single", "shards", "splits"]))
    if kind == "single":
        return 1, ()
    if kind == "shards":
        return draw(st.integers(2, 6)), ()
    names = draw(st.lists(st.sampled_from(SPLIT_NAMES), min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):  # without a 'rest' split, fractions that add up to 1
        sizes = {1: [1.0], 2: [0.5, 0.5], 3: [0.2, 0.3, 0.5]}[len(names)]
    else:
        sizes = draw(st.lists(
            st.one_of(st.integers(1, 300), st.sampled_from([0.01, 0.1, 0.25, 0.5, 1.0])),
            min_size=len(names), max_size=len(names),
        ))
        sizes[draw(st.integers(0, len(names) - 1))] = "rest"
    return 1, tuple((n, s, draw(st.integers(1, 3))) for n, s in zip(names, sizes))


TAKES = st.one_of(
    st.just(()), st.just(()),
    st.tuples(st.just("head"), st.sampled_from([0, 1, 7, 100, 5000, 10**6])),
    st.tuples(st.just("fraction"), st.sampled_from([0.0, 0.01, 0.5, 0.999, 1.0])),
)
WEIGHTS = st.one_of(
    st.just(()), st.just(()),
    st.lists(st.sampled_from([0, 0.3, 0.5, 1, 1.5, 2, 2.7, 5, 0.999]), min_size=1, max_size=4).map(tuple),
)
MIXING = st.one_of(
    st.builds(dict, weights=WEIGHTS), st.builds(dict, weights=WEIGHTS),
    st.builds(dict, dedup=st.just("record"), weights=WEIGHTS),
)
OUTPUTS = st.sampled_from([
    "out/shuffled.txt", "out/corpus.jsonl.zst", "shuffled.txt.gz", "out/noext", "o u t/[x] 'y'.txt", "out/c.jsonl",
])


PARQUET_OUTPUTS = st.sampled_from(["out/shuffled.parquet", "o u t/[x] 'y'.parquet"])


@st.composite
def table_scenarios(draw):
    """Parquet inputs: rows of one random schema, in files stored any way."""
    count = draw(st.sampled_from([1, 2, 3, 8]))
    shards, splits = draw(layouts())
    narrow = draw(st.integers(0, 3)) == 0  # many rows of a few bytes: buckets in passes
    rows = [3000, 6000] if narrow else [0, 1, 5, 60, 700]
    files = tuple(FileSpec(records=draw(st.sampled_from(rows)), seed=draw(st.integers(0, 2**32 - 1)))
                  for _ in range(min(count, 2) if narrow else count))
    schema = st.sampled_from(NARROW_SCHEMA_SEEDS) if narrow else st.integers(1, 2**32 - 1)
    return Scenario(
        files=files, runs=tuple(draw(RUNS) for _ in range(2)), seed=draw(SEEDS), output=draw(PARQUET_OUTPUTS),
        shards=shards, splits=splits, source=draw(st.sampled_from(["list", "glob", "sheet"])),
        take=draw(TAKES), table=draw(schema), row_group_rows=draw(st.sampled_from([1, 7, 100_000])),
        objects=draw(st.integers(0, 4)) == 0,
        object_output=draw(st.integers(0, 4)) == 0,
        **draw(st.one_of(MIXING, st.builds(dict, weights=WEIGHTS, dedup=st.sampled_from(
            ["column:keep", "column:drop", "column:error", "number:keep"])))),
    )


@st.composite
def scenarios(draw):
    if draw(st.integers(0, 5)) == 0:
        return draw(table_scenarios())
    runs = tuple(draw(RUNS) for _ in range(2))
    paired = draw(st.integers(0, 9)) == 0
    # Records just under the smaller run's limit (the longest allowed), sometimes.
    long_limit = min(r.max_record_bytes for r in runs) if not paired else 0
    count = draw(st.sampled_from([1, 2, 3, 8, 50]))
    corpus_kb = draw(st.sampled_from([4, 64, CORPUS_KB, CORPUS_KB]))
    long_limit = long_limit if long_limit <= 64 << 10 else 0
    files = tuple(draw(file_specs(corpus_kb / count, long_limit)) for _ in range(count))
    shards, splits = draw(layouts())
    header_lines = 0 if paired else draw(st.sampled_from([0, 0, 0, 1, 2]))
    return Scenario(
        files=files[:4] if paired else files,
        runs=runs,
        seed=draw(SEEDS),
        separator=draw(st.sampled_from(["newline", "newline", "nul"])),
        header_lines=header_lines,
        header_mismatch=header_lines > 0 and draw(st.integers(0, 9)) == 0,
        paired_width=draw(st.integers(2, 3)) if paired else 0,
        misaligned=paired and draw(st.integers(0, 9)) == 0,
        output=draw(OUTPUTS),
        shards=shards,
        splits=splits,
        source=draw(st.sampled_from(["list", "glob", "sheet"])),
        names=draw(st.sampled_from(NAME_STYLES)),
        verify=draw(st.sampled_from(["changed", "always"])),
        earlier_run=draw(st.integers(0, 3)) == 0,
        take=draw(TAKES),
        objects=not paired and draw(st.integers(0, 4)) == 0,  # 'paired' reads local files only
        object_output=draw(st.integers(0, 4)) == 0,
        **draw(MIXING),
    )
