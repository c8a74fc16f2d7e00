"""The run spec: everything that defines a run's output, decided once by the
main process and read back by every job.

rules/common.smk builds the RunSpec from the configuration and the plan; rule
write_plan writes it as the plan file, named by its content, so that a
changed spec is a new input to every job and no job ever reads a stale one.
A job is given the plan file, its wildcard, its declared files and its memory
budget, nothing more: what the output is comes from here alone.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property

from snakeshuf.mixing.dedup import Dedup
from snakeshuf.mixing.weights import Source
from snakeshuf.outputs import destinations, provenance
from snakeshuf.outputs.layout import Split, column_names, output_paths
from snakeshuf.planning.plan import InputFile, Segment
from snakeshuf.records import codecs, formats
from snakeshuf.stages.jobs import atomic_write
from snakeshuf.stages.scratch import Scratch


@dataclass(frozen=True)
class RunSpec:
    files: tuple  # plan.InputFile, in input order
    chunks: tuple  # for each split job, a tuple of plan.Segment
    width: int  # files per record: more than 1 for paired (aligned) inputs
    buckets: int  # shuffle jobs
    parts: int  # consecutive key ranges per bucket, which its job orders one at a time
    seed: int
    separator: int  # the byte that ends every record
    header_lines: int
    header_bytes: int  # the length of the header every input starts with
    layout: tuple  # outputs.Split: how the one order is cut into files
    take: list  # the part of the one order published: None (all), [HEAD, n] or [FRACTION, p]
    output: str  # the configured output name
    scratch: str  # this run's own scratch directory
    sources: tuple = (Source("inputs"),)  # weights.Source: each file's is files[i].source
    dedup: object = None  # dedup.Dedup: what makes records duplicates; None: keep them all
    parquet: object = None  # parquet.ParquetOutput: how Parquet outputs are written; None: a run of text

    @cached_property
    def records(self):
        """The record format (snakeshuf.records.formats): lines of text or Parquet rows."""
        return formats.of(self)

    @property
    def selects(self):
        """Whether a source's weight has a fraction: the split jobs write candidates
        for its extra copies, and rule tally_buckets chooses among them."""
        return any(s.copies.fraction for s in self.sources)

    @property
    def columns(self):
        """Names of the columns of paired inputs (None otherwise)."""
        return column_names([f.path for f in self.files[: self.width]]) if self.width > 1 else None

    @property
    def outputs(self):
        """Every output file, in the global order (each file's columns in turn)."""
        return output_paths(self.output, self.layout, self.columns)

    @property
    def codec(self):
        return codecs.output_codec(self.output)

    @property
    def in_place(self):
        """One plain output file: bucket jobs write their records straight into
        it; otherwise they write pieces, which gather joins into files."""
        return len(self.outputs) == 1 and self.codec is codecs.PLAIN and self.take is None and self.records.in_place

    @property
    def destination(self):
        """Where the outputs are published (snakeshuf.outputs.destinations): files or objects."""
        return destinations.of(self.output)

    @property
    def target(self):
        """The output file as gather stages it, while bucket jobs write it in
        place (the one file may be a split's: 'out.train.txt')."""
        return self.destination.staged(self, 0)

    @property
    def key_ranges(self):
        """What split jobs sort records into: bucket b holds key ranges
        b * parts .. (b + 1) * parts - 1."""
        return self.buckets * self.parts

    def chunk_bytes(self, chunk):
        """The bytes of records chunk `chunk` holds (estimated for a compressed file)."""
        files = self.files
        return sum(
            s.end - s.start if files[s.file_index].codec is codecs.PLAIN else files[s.file_index].data_bytes
            for s in self.chunks[chunk]
        )

    @cached_property
    def made_by(self):
        """What defines the bytes this spec publishes (snakeshuf.outputs.provenance)."""
        return provenance.made_by(self)

    @cached_property
    def fingerprint(self):
        return provenance.fingerprint(self.made_by)

    @property
    def paths(self):
        return Scratch(self.scratch)

    def to_json(self):
        return json.dumps({
            "files": [[f.path, f.size, f.codec, f.mtime_ns, f.source, f.copies, f.version] for f in self.files],
            "chunks": [[[s.file_index, s.start, s.end] for s in chunk] for chunk in self.chunks],
            "width": self.width, "buckets": self.buckets, "parts": self.parts, "seed": self.seed, "separator": self.separator,
            "header_lines": self.header_lines, "header_bytes": self.header_bytes,
            "layout": [[s.name, s.size, s.shards] for s in self.layout], "take": self.take,
            "output": self.output, "scratch": self.scratch,
            "sources": [[s.name, s.weight] for s in self.sources],
            "dedup": self.dedup.to_json() if self.dedup else None,
            "parquet": self.parquet.to_json() if self.parquet else None,
        })

    def plan_file(self):
        """The plan file's path, named by the spec's content."""
        return self.paths.plan(hashlib.sha1(self.to_json().encode()).hexdigest()[:12])

    def write(self, path):
        """Write the spec as a plan file (complete or not at all)."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_write(path) as handle:
            handle.write(self.to_json().encode())

    @classmethod
    def read(cls, path):
        with open(path) as handle:
            return cls.from_json(handle.read())

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        return cls(
            files=tuple(InputFile(i, *f) for i, f in enumerate(data.pop("files"))),
            chunks=tuple(tuple(Segment(*s) for s in chunk) for chunk in data.pop("chunks")),
            layout=tuple(Split(*s) for s in data.pop("layout")),
            sources=tuple(Source(*s) for s in data.pop("sources")),
            dedup=Dedup(**data.pop("dedup")) if data.get("dedup") else data.pop("dedup"),
            parquet=formats.ParquetOutput(*data.pop("parquet")) if data.get("parquet") else data.pop("parquet"),
            **data,
        )
