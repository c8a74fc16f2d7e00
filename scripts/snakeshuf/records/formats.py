"""Record formats: what one record of a run is, a line of text (Lines) or a
row of a Parquet table (Rows). The run's format follows from its inputs and
is chosen once, in the run spec (RunSpec.records); the job scripts ask it how
to read records, write a piece and write an output file, and never branch on
file types themselves. Every other stage handles records as bytes.

The spec is built while Snakemake parses the workflow, so what only some
jobs use (pyarrow.parquet, dedup, joining) is imported where it is used.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from snakeshuf.errors import ConfigError
from snakeshuf.planning.memory import BASE_MB, REAL_MIB
from snakeshuf.records import codecs
from snakeshuf.records.lines import RecordReader, common_header
from snakeshuf.sources.reading import for_each, open_input


MAX_JOINS = 4


class Lines:
    """Records that end with the separator byte, in text files (compressed or not)."""

    in_place = True  # one plain output file can be written in place by the bucket jobs

    def __init__(self, spec):
        self.spec = spec

    @property
    def record_end(self):
        """The byte every record ends with (None: no such byte)."""
        return self.spec.separator

    def longest_record(self, memory):
        """The longest record (separator included) a split job with `memory` reads."""
        return memory.block_bytes

    def reader(self, memory):
        """What reads the records of a byte range of an input, in Batches with their positions."""
        buffer = np.empty(memory.block_bytes + 1, np.uint8)
        return RecordReader(self.spec.separator, buffer, memory.batch_records, memory.window_bytes)

    def piece_content(self, handle):
        """What writes records (their bytes and lengths) into a piece file."""
        return RecordBytes(handle)

    def gather_threads(self):
        """Output files joined at once, where bucket jobs write pieces: each is
        one writer's copy of its share (a few MB of buffers), so a sharded
        output's gather goes up to MAX_JOINS times as fast."""
        return 1 if self.spec.in_place else min(len(self.spec.outputs), MAX_JOINS)

    def write_outputs(self, files, header, threads, memory_mb):
        """Write each (path, pieces) of `files`, `threads` at once; what to add to the job's report (nothing)."""
        from snakeshuf.records.joining import join_text  # only gather joins files

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda job: join_text(job[0], header, job[1], self.spec.codec), files))
        return {}

    def check_inputs(self, memory):
        """Raise InputError for what no job could read; return notes for the person (none here)."""
        for_each(codecs.check_not_container, self.spec.files)
        if self.spec.header_lines:
            common_header(self.spec.files, self.spec.header_lines, self.spec.separator)  # each input's is the same
            if self.spec.dedup and self.spec.dedup.field is not None:
                for f in self.spec.files:  # a column named that the header lacks
                    self.identities(f.path)
        return []

    @cached_property
    def header(self):
        """The header every input starts with (the first's: check_inputs saw that all agree)."""
        spec = self.spec
        return common_header(spec.files[:1], spec.header_lines, spec.separator) if spec.header_lines else b""

    def identities(self, path):
        """What makes the records of input `path` duplicates (snakeshuf.mixing.dedup)."""
        from snakeshuf.mixing.dedup import Identities

        return Identities(self.spec.dedup, path, self.header)

    def place(self, f, position):
        """Where in input `f` the record at `position` is, for a message."""
        from snakeshuf.mixing.dedup import line_number

        with open_input(f.path) as raw:
            opened = nullcontext(raw) if f.codec is codecs.PLAIN else codecs.open_stream(raw, f.codec)
            with opened as stream:
                return f"line {line_number(stream, position, self.spec.separator)}"


class RecordBytes:
    def __init__(self, handle):
        self.handle = handle

    def write(self, data, lengths):
        self.handle.write(data)

    def close(self):
        pass


class Rows:
    """Rows of Parquet files (snakeshuf.records.parquet), as encoded records (snakeshuf.records.rows)."""

    in_place = False  # a Parquet file is written whole, by gather
    record_end = None

    def __init__(self, spec):
        self.spec = spec

    @cached_property
    def schema(self):
        """The inputs' schema (checked to be every input's before any job), with the first one's metadata."""
        from snakeshuf.records import parquet

        return parquet.schema_of(self.spec.files[0].path)

    def longest_record(self, memory):
        """A row is read (Arrow), encoded, copied into the block and regrouped
        beside the block and the spill being written: the longest is a block's
        share of that (a 90 MiB row took 598 MB at a 512 MB budget when it could
        be a whole block)."""
        return memory.block_bytes // ROW_SHARE

    def reader(self, memory):
        from snakeshuf.records.parquet import RowReader

        return RowReader(memory.block_bytes, memory.batch_records, self.longest_record(memory))

    def piece_content(self, handle):
        from snakeshuf.records.parquet import PieceRows

        return PieceRows(handle, self.schema)

    def gather_threads(self):
        return ENCODING_THREADS

    def write_outputs(self, files, header, threads, memory_mb):
        """Write each (path, pieces) of `files` in turn, `threads` row groups
        encoded at once as far as `memory_mb` allows; what to add to the job's report."""
        from snakeshuf.records.rowgroups import Encoder, join_pieces

        settings = self.spec.parquet
        with Encoder(threads, encoding_room(settings, memory_mb), settings) as encoder:
            for path, pieces in files:
                join_pieces(path, self.schema, settings, pieces, encoder)
        return {"row_groups_at_once": encoder.most}

    def check_inputs(self, memory):
        from snakeshuf.records.parquet import check_inputs

        note = check_inputs(self.spec.files, memory)
        if self.spec.dedup:
            self.identities(self.spec.files[0].path)
        return [note] if note else []

    def identities(self, path):
        from snakeshuf.records.parquet import RowIdentities

        return RowIdentities(self.spec.dedup.field, self.schema, path)

    def place(self, f, position):
        return f"row {position + 1}"


def of(spec):
    return Rows(spec) if is_parquet(spec.files) else Lines(spec)


def is_parquet(files):
    """Whether the records are Parquet rows: all inputs are Parquet files, or
    none (a ConfigError names one of each)."""
    tables = [f for f in files if f.codec == codecs.PARQUET]
    if tables and len(tables) < len(files):
        text = next(f for f in files if f.codec != codecs.PARQUET)
        raise ConfigError(
            f"input '{tables[0].path}' is a Parquet file and '{text.path}' is not: a run shuffles "
            "either lines of text or Parquet rows; run the two kinds separately"
        )
    return bool(tables)


@dataclass(frozen=True)
class ParquetOutput:
    """Config key 'parquet': how output files are written."""

    row_group_rows: int
    row_group_mb: int
    compression: str

    def to_json(self):
        return [self.row_group_rows, self.row_group_mb, self.compression]


# A row's share of a split job's block (Rows.longest_record).
ROW_SHARE = 4
# Gather holds a row group's rows as the pieces give them, one contiguous
# copy (Parquet cuts pages where chunks end: written from the pieces' chunks,
# the bytes would follow the buckets), its encoding, a piece's batch and the
# allocator's slack: ROW_GROUPS_HELD row groups (measured: 241 MB in all for
# 1 MiB rows in row groups of 20 MiB). Memory beyond that lets it encode more
# row groups at once while it reads on, each holding ENCODING_COST times its
# bytes: its copy, the writer's pages (all of a column's, while it tries a
# dictionary) and the encoded bytes until they are written (measured: 3.4x
# for 1 MiB rows, five row groups at once).
ROW_GROUPS_HELD = 6
ENCODING_COST = 4
# Row groups encoded at once at most (snakeshuf.records.rowgroups), as far as memory_mb allows.
ENCODING_THREADS = 4

PARQUET_SUFFIX = ".parquet"


def parquet_output(files, config):
    """How the run writes Parquet (config key 'parquet'), or None for a run of
    text; a ConfigError says what a run of Parquet rows cannot do."""
    output = config["output"]
    if not is_parquet(files):
        if output.endswith(PARQUET_SUFFIX):
            for f in files:  # a Parquet file inside gzip is refused as such, not as text
                codecs.check_not_container(f)
            raise ConfigError(f"output '{output}' is named as a Parquet file, but the inputs are text: a run "
                              "writes records as it reads them; name the output after the inputs' format")
        return None
    refused = [
        (os.path.splitext(output)[1] not in ("", PARQUET_SUFFIX), f"the output is a Parquet file: name it "
         f"*{PARQUET_SUFFIX} (config key 'output' is '{output}')"),
        (config["header_lines"], "a Parquet file has no header lines: set header_lines to 0"),
        (config["separator"] not in ("newline", "\n"), "rows have no separator: leave out config key 'separator' "
         "(snakeshuf -z)"),
        (config["paired"], "config key 'paired' is for line-aligned text files: give the tables as 'inputs'"),
        (isinstance(config["dedup"], dict) and config["dedup"].get("format"), "leave out dedup's 'format': a "
         "field is a column of the tables"),
    ]
    for wrong, what in refused:
        if wrong:
            raise ConfigError(f"the inputs are Parquet files, whose records are rows: {what}")
    settings = ParquetOutput(**config["parquet"])
    check_settings(settings, config["memory_mb"])
    return settings


def check_settings(settings, memory_mb):
    """Gather holds ROW_GROUPS_HELD row groups at least. (Tests that shrink
    the memory unit shrink row_group_mb here alike; the row groups themselves
    are in real MiB, so that they never depend on it.)"""
    needed = BASE_MB + ROW_GROUPS_HELD * settings.row_group_mb
    if memory_mb < needed:
        raise ConfigError(
            f"config key 'parquet': row groups of up to {settings.row_group_mb} MiB need memory_mb of at least "
            f"{needed}; lower parquet.row_group_mb or raise memory_mb (snakeshuf --memory {needed}M)"
        )


def encoding_room(settings, memory_mb):
    """The bytes of row groups (their rows encoded, as they are cut) that
    gather may go on encoding while it reads on: none at the least memory
    (check_settings), more as memory_mb allows (in real MiB, as row groups are)."""
    return (memory_mb - BASE_MB - ROW_GROUPS_HELD * settings.row_group_mb) * REAL_MIB // ENCODING_COST
