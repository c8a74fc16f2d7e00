"""The plan: which input bytes each split job reads, and how the keys are cut
into buckets and key ranges.

Planning runs every time the Snakefile is parsed (on a cluster, in every job),
so it only calls stat(): it never reads the data.
"""

import glob
import math
import os
import stat
from dataclasses import dataclass, replace

from snakeshuf.errors import ConfigError
from snakeshuf.mixing.weights import Copies, Source
from snakeshuf.planning.memory import INDEX_ROW_BYTES, MB, MIN_MEMORY_MB, MemoryModel
from snakeshuf.records import codecs
from snakeshuf.sources import objects
from snakeshuf.sources.reading import for_each, identity_of

# Each split job pays a start-up and the first touch of its buffers (costly on
# VMs that return freed memory to the host), and a bucket job pays the same
# and overlaps reading with ordering only within itself, reading one key
# range while it orders and writes the one before. Chunks of AUTO_CHUNK_BYTES
# and buckets of about BUCKET_JOB_BYTES (2 to MAX_PARTS key ranges) amortise
# both: 2 GiB of each against 1 GiB made whole runs 0.887x as long at 4 GiB
# and 0.928x at 16 GiB (memory_mb=512, 2 cores, medians of 5 and 3 pairs),
# as 1 GiB against 512 MiB chunks and 273 MB buckets had before. Smaller
# inputs are cut into at least AUTO_CHUNK_MIN_COUNT chunks (of 64 MiB or
# more) so that split jobs still run side by side (4 chunks measured slower
# than 2 at 1 and 2 GiB: each costs a start-up); larger ones into at most
# AUTO_CHUNK_TARGET_COUNT. Chunks and buckets come in multiples of JOBS_STEP,
# so that two cores finish them together (4 GiB: whole run 10.4-10.8 s with
# 4 buckets against 10.9-11.8 s with 8).
AUTO_CHUNK_BYTES = 2048 * MB
AUTO_CHUNK_FLOOR_BYTES = 64 * MB
AUTO_CHUNK_MIN_COUNT = 2
AUTO_CHUNK_TARGET_COUNT = 128
BUCKET_JOB_BYTES = 2048 * MB
MAX_PARTS = 16
JOBS_STEP = 2
# A 10 TB plan of 15,856 jobs dry-runs in 31 s here; much beyond this,
# building Snakemake's DAG alone takes minutes. Split jobs count too: each
# writes an index row per key range per spill, so many key ranges make
# chunks small (a 10 TB plan at memory_mb=1024: 7,928 bucket and ~1,630
# split jobs).
MAX_JOBS = 20_000
# Planning assumes compressed text holds this many times its size (gzip and
# zstd reach 3-5x on web text). A wrong guess changes the number of jobs,
# never their memory (a key range that is too large is done in several passes).
COMPRESSED_EXPANSION = 4
# Rule tally_buckets reads every index once and writes the bucket table for
# all bucket jobs. It costs a job start and a gap between stages (0.22 s of a
# 6.6 s run at 1 GiB), so where the bucket jobs together would read about
# this much index or less, each makes the table itself (and gather too).
NO_TALLY_JOB_INDEX_BYTES = 64 * MB


@dataclass(frozen=True)
class InputFile:
    index: int
    path: str
    size: int
    codec: str = codecs.PLAIN
    mtime_ns: int = 0  # with the size and version, what says an input changed (snakeshuf.sources.reading)
    source: int = 0  # which of the run's sources (snakeshuf.mixing.weights) it belongs to
    copies: int = 1  # of each record, that the split jobs write (snakeshuf.mixing.weights.Copies.written)
    version: str = ""  # an object's ETag; '' for a local file

    @property
    def data_bytes(self):
        """The bytes of records it holds (for a compressed file, an estimate)."""
        return self.size if self.codec is codecs.PLAIN else self.size * COMPRESSED_EXPANSION

    @property
    def written_bytes(self):
        """The bytes of records the split jobs write for it, its copies included."""
        return self.data_bytes * self.copies


def total_data_bytes(files):
    """The bytes the split jobs write, what the plan is sized by."""
    return sum(f.written_bytes for f in files)


@dataclass(frozen=True)
class Segment:
    """Bytes [start, end) of input file `file_index`; owns the records starting there."""

    file_index: int
    start: int
    end: int


@dataclass(frozen=True)
class BucketLayout:
    """How the key space is cut: `buckets` (one shuffle job each) of `parts`
    consecutive key ranges each."""

    buckets: int
    parts: int

    @property
    def key_ranges(self):
        return self.buckets * self.parts


@dataclass(frozen=True)
class Plan:
    files: tuple
    chunks: tuple  # of tuples of Segments
    layout: BucketLayout
    memory: MemoryModel
    chunk_bytes: int
    # Files per record: >1 for aligned (paired) inputs, read in groups this wide.
    width: int = 1
    sources: tuple = (Source("inputs"),)  # weights.Source: files[i].source is one of them

    @property
    def buckets(self):
        return self.layout.buckets

    @property
    def total_bytes(self):
        return total_data_bytes(self.files)

    @property
    def index_bytes(self):
        """About how much index the split jobs write: a row per key range per spill."""
        spills = self.total_bytes / self.memory.block_bytes + len(self.chunks)
        return int(spills * self.layout.key_ranges * INDEX_ROW_BYTES)

    @property
    def tally_job(self):
        """Whether a job of its own makes the bucket table (NO_TALLY_JOB_INDEX_BYTES).
        Decided from what the plan file holds, not from memory_mb, so that a
        run and its resume agree whenever their plan files do: a spill is
        0.7 to 1 key range's worth of records (MemoryModel), so the split jobs
        write about one spill per key range and one per chunk, each a row per key range."""
        key_ranges = self.layout.key_ranges
        rows = key_ranges * (key_ranges + len(self.chunks))
        return rows * INDEX_ROW_BYTES * self.buckets > NO_TALLY_JOB_INDEX_BYTES

    def chunk_files(self, chunk):
        return [self.files[s.file_index] for s in self.chunks[chunk]]


def expand_inputs(patterns, owners):
    """(path, the glob that found it or None, the pattern's place in
    `patterns`) in the order given; each glob expands sorted, skips the run's
    own bookkeeping files (left by a failed run) and must match something."""
    if not patterns:
        raise ConfigError("config key 'inputs' lists no files: name at least one input file")
    found = []
    for entry, pattern in enumerate(patterns):
        remote = objects.is_object(pattern)
        if remote and glob.has_magic(pattern):
            found += [(m, None if m == pattern else pattern, entry) for m in objects_matching(pattern)]
        elif not remote and glob.has_magic(pattern) and not os.path.lexists(pattern):
            matches = [m for m in sorted(glob.glob(pattern, recursive=True)) if not is_bookkeeping(m, owners)]
            if not matches:
                raise ConfigError(f"input pattern '{pattern}' (config key 'inputs') matches no file")
            found += [(m, pattern, entry) for m in matches]
        else:
            found.append((pattern, None, entry))
    return found


def objects_matching(pattern):
    matches = objects.matching(pattern)
    if not matches:
        raise ConfigError(f"input pattern '{pattern}' (config key 'inputs') matches no object")
    return matches


def is_bookkeeping(path, owners):
    try:
        owner = owners.of(path, os.stat(path))
    except OSError:
        return False  # refused with a reason when it is loaded
    return owner is not None and not owner[1]


def check_not_owned(path, info, pattern, owners, role="input"):
    """An input (or the sample sheet: `role`) must not be one of the files the
    run writes (an output, its partial, the summary, anything in its scratch
    or log directories)."""
    owner = owners.of(path, info)
    if owner is None:
        return
    what, _ = owner
    if pattern:
        raise ConfigError(
            f"input pattern '{pattern}' matches '{path}', {what}: make the pattern match only the "
            "inputs (e.g. by their extension), or choose another output path (config key 'output')"
        )
    raise ConfigError(
        f"{role} '{path}' is {what}; a run never reads what it writes: rename or move the {role}, "
        "or choose another output path (config key 'output')"
    )


def has_braces(path):
    """Snakemake reads '{' and '}' in file paths as wildcards and cannot escape them."""
    return "{" in path or "}" in path


def check_utf8(path, what, source):
    """Snakemake records file names as UTF-8 (its locks, its metadata): a name
    that is other bytes would end the run in a traceback."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = str(os.fsencode(path))[2:-1]  # the bytes, escaped: printing the name itself fails too
        raise ConfigError(
            f"{what} '{shown}' ({source}) has a name that is not UTF-8, which Snakemake cannot record: "
            "rename it, or link it under a UTF-8 name"
        ) from None


def stat_input(path, source):
    """The stat of an input that must be a readable regular file (an object's ObjectInfo)."""
    if objects.is_object(path):
        return objects.stat(path, source)
    check_utf8(path, "input", source)
    if has_braces(path):
        raise ConfigError(
            f"input '{path}' ({source}) has '{{' or '}}' in its path, which Snakemake reads as "
            "wildcards in file names: rename it, or link it under a name without braces"
        )
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"input '{path}' does not exist ({source})") from None
    except OSError as error:
        raise ConfigError(f"input '{path}' cannot be used: {error.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        inside = "*.parquet" if path.rstrip("/").endswith(".parquet") else "*.txt"  # Spark writes x.parquet/
        raise ConfigError(
            f"input '{path}' is a directory; list its files or use a glob such as '{path.rstrip('/')}/{inside}'"
        )
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"input '{path}' is not a regular file (a pipe or device cannot be split)")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"input '{path}' is not readable: check its permissions")
    return info


def check_output(output):
    if os.path.isdir(output):
        raise ConfigError(f"output '{output}' is a directory; give a file path (config key 'output')")


def load_inputs(found, owners, source, entry_sources):
    """InputFiles of (path, pattern, entry) triples, each a readable regular
    file (or an object) that is listed once and is not the run's own;
    `entry_sources` gives each entry's source."""
    paths = [path for path, _, _ in found]
    infos = list(zip(paths, for_each(lambda path: stat_input(path, source), paths)))
    seen = {}
    for (path, info), (_, pattern, _) in zip(infos, found):
        if isinstance(info, objects.ObjectInfo):  # a run writes no object
            key = path
        else:
            check_not_owned(path, info, pattern, owners)
            key = (info.st_dev, info.st_ino)
        if key in seen:
            raise ConfigError(
                f"input '{path}' is the same file as '{seen[key]}'; each input may be listed once "
                "(remove the duplicate from 'inputs' or narrow the glob)"
            )
        seen[key] = path
    return tuple(
        input_file(i, path, identity_of(info), codec, entry_sources[entry])
        for i, ((path, info), codec, (_, _, entry)) in enumerate(zip(infos, for_each(codec_of, paths), found))
    )


def recall_codecs(record):
    """Take the codec of each object the summary `record` lists (its
    object_codecs) as learnt, for the same version (ETag) of the object: a
    run that finds its output current then reads no object."""
    listed = (record or {}).get("object_codecs")
    for url, entry in listed.items() if isinstance(listed, dict) else ():
        if isinstance(entry, list) and len(entry) == 2 and entry[1] in (codecs.PLAIN, codecs.PARQUET, *codecs.SIGNATURES):
            objects.FACTS["codec", codec_key(url, entry[0])] = entry[1]


def codec_of(path):
    """Its compression (or Parquet), from its first bytes: an object's is
    learnt once for each version (ETag) of it, and kept from run to run."""
    if not objects.is_object(path):
        return codecs.detect(path)
    version = objects.stat(path).etag  # learnt already, with its size
    return objects.fact("codec", codec_key(path, version), lambda: codecs.detect(path))


def codec_key(url, version):
    return f"{url} {version}"


def input_file(index, path, identity, codec, source):
    size, mtime_ns, version = identity
    return InputFile(index, path, size, codec, mtime_ns, source, version=version)


@dataclass(frozen=True)
class Chunking:
    """Config keys chunk_mb ('auto' or MiB) and max_chunk_gb (None: no bound)."""

    size_mb: object = "auto"
    max_gb: int = None

    @property
    def max_bytes(self):
        return self.max_gb and self.max_gb * 1024 * MB


def auto_chunk_bytes(total_bytes, max_bytes=None):
    """AUTO_CHUNK_BYTES, smaller for small inputs (parallel split jobs) and for
    an even count, larger for huge ones (a bounded number of jobs), but never
    above `max_bytes` (what a failed split job redoes)."""
    small_input = max(AUTO_CHUNK_FLOOR_BYTES, math.ceil(total_bytes / AUTO_CHUNK_MIN_COUNT))
    chunk = max(min(AUTO_CHUNK_BYTES, small_input), math.ceil(total_bytes / AUTO_CHUNK_TARGET_COUNT))
    chunk = min(chunk, max_bytes or chunk)
    count = round_up_to_step(max(1, math.ceil(total_bytes / chunk)))
    return max(AUTO_CHUNK_FLOOR_BYTES, math.ceil(total_bytes / count))


def round_up_to_step(jobs):
    return -(-jobs // JOBS_STEP) * JOBS_STEP


def cut_chunks(files, chunk_bytes):
    """Cut the inputs into chunks that write about chunk_bytes (copies
    included); small files share a chunk, a compressed file is never cut (it
    can only be read from its start), and a file of which no copy is
    published (weight 0) is not read."""
    chunks, current, room = [], [], chunk_bytes
    for f in files:
        if current and f.codec is not codecs.PLAIN and f.copies and f.written_bytes > room:
            chunks.append(tuple(current))  # a compressed file is not added to a chunk it would overfill
            current, room = [], chunk_bytes
        pos = 0
        while pos < f.size and f.copies:
            take = min(-(-room // f.copies), f.size - pos) if f.codec is codecs.PLAIN else f.size
            current.append(Segment(f.index, pos, pos + take))
            pos += take
            room -= take * f.copies if f.codec is codecs.PLAIN else f.written_bytes
            if room <= 0:
                chunks.append(tuple(current))
                current, room = [], chunk_bytes
    if current:
        chunks.append(tuple(current))
    return tuple(chunks)


def bucket_layout(total_bytes, memory):
    ranges = max(1, math.ceil(total_bytes / memory.key_range_bytes))
    parts = min(max(2, math.ceil(BUCKET_JOB_BYTES / memory.key_range_bytes)), MAX_PARTS)
    buckets = math.ceil(ranges / parts)
    if ranges >= JOBS_STEP:
        buckets = round_up_to_step(buckets)
    return BucketLayout(buckets, math.ceil(ranges / buckets))


def fewest_jobs(total_bytes, memory, chunking):
    """Bucket jobs and the fewest split jobs the split jobs' index bound and
    max_chunk_gb allow."""
    layout = bucket_layout(total_bytes, memory)
    largest = min(memory.max_chunk_bytes(layout.key_ranges), chunking.max_bytes or math.inf)
    return layout.buckets + math.ceil(total_bytes / largest)


def fits_scale(total_bytes, memory, chunking):
    return fewest_jobs(total_bytes, memory, chunking) <= MAX_JOBS


def smallest_memory_for(total_bytes, chunking):
    """The smallest memory_mb (in steps of 64) whose plan fits MAX_JOBS."""
    memory_mb = MIN_MEMORY_MB
    while not fits_scale(total_bytes, MemoryModel(memory_mb), chunking):
        memory_mb += 64
    return memory_mb


def check_scale(total_bytes, memory, chunking):
    if chunking.max_bytes and math.ceil(total_bytes / chunking.max_bytes) + JOBS_STEP > MAX_JOBS:
        raise ConfigError(
            f"max_chunk_gb={chunking.max_gb} cuts the inputs' {total_bytes / 2**40:,.1f} TiB into more than "
            f"the {MAX_JOBS:,} jobs Snakemake schedules well; raise max_chunk_gb"
        )
    if not fits_scale(total_bytes, memory, chunking):
        bound = " or raise max_chunk_gb" if fits_scale(total_bytes, memory, Chunking()) else ""
        raise ConfigError(
            f"with memory_mb={memory.memory_mb} the plan needs more than the {MAX_JOBS:,} jobs Snakemake "
            f"schedules well; set memory_mb to at least {smallest_memory_for(total_bytes, chunking)}{bound} "
            "(each job then takes a larger share of the input)"
        )


def chunk_size(total_bytes, chunking, memory, key_ranges):
    """Bytes per split job: auto grows with the input up to max_chunk_gb, and
    both are capped so that a split job's index rows stay within its memory."""
    limit = memory.max_chunk_bytes(key_ranges)
    chunk_mb = chunking.size_mb
    if chunk_mb == "auto":
        return min(auto_chunk_bytes(total_bytes, chunking.max_bytes), limit)
    if chunking.max_bytes and min(chunk_mb * MB, total_bytes) > chunking.max_bytes:
        raise ConfigError(
            f"chunk_mb is {chunk_mb}, more than max_chunk_gb={chunking.max_gb} allows a split job: "
            "lower chunk_mb, raise max_chunk_gb, or set chunk_mb: auto"
        )
    if chunk_mb * MB > limit:
        raise ConfigError(
            f"chunk_mb is {chunk_mb}, but with memory_mb={memory.memory_mb} and {key_ranges:,} key ranges "
            f"a split job's index fits chunks of at most {limit // MB:,} MiB; lower chunk_mb, "
            "raise memory_mb, or set chunk_mb: auto"
        )
    return int(chunk_mb * MB)


def check_memory(memory_mb):
    if memory_mb < MIN_MEMORY_MB:
        raise ConfigError(
            f"memory_mb is {memory_mb}, below the minimum of {MIN_MEMORY_MB} "
            "(a job's Python, NumPy and PyArrow alone take up to ~100 MB); set memory_mb >= "
            f"{MIN_MEMORY_MB}"
        )


def make_plan(inputs, run, memory_mb, chunking=Chunking(), sheet=None, entry_sources=None, sources=()):
    """`inputs`: patterns as config key 'inputs' gives them, or the paths that
    the sample sheet `sheet` lists (taken literally); `run`: the
    namespace.RunFiles of the run, which no input may be; `entry_sources`:
    the source of each of `inputs` (all the first: None), and `sources` the
    weights.Source of each (none: one of weight 1)."""
    check_memory(memory_mb)
    check_output(run.output)
    owners = run.owners()
    entry_sources = entry_sources or [0] * len(inputs)
    if sheet:
        check_not_owned(sheet, os.stat(sheet), None, owners, "sample sheet")
        found = [(p, None, entry) for entry, p in enumerate(inputs)]
        files = load_inputs(found, owners, f"listed in sample sheet '{sheet}'", entry_sources)
    else:
        files = load_inputs(expand_inputs(inputs, owners), owners, "config key 'inputs'", entry_sources)
    files = with_copies(files, sources)
    total = total_data_bytes(files)
    memory = MemoryModel(memory_mb)
    check_scale(total, memory, chunking)
    layout = bucket_layout(total, memory)
    chunk_bytes = chunk_size(total, chunking, memory, layout.key_ranges)
    check_compressed_sizes(files, memory, layout.key_ranges)
    return Plan(files, cut_chunks(files, chunk_bytes), layout, memory, chunk_bytes, sources=sources or Plan.sources)


def with_copies(files, sources):
    """`files`, each with the copies its source's weight has the split jobs write."""
    if not sources:
        return files
    return tuple(replace(f, copies=Copies.of(sources[f.source].weight).written) for f in files)


def check_compressed_sizes(files, memory, key_ranges):
    """A compressed file is read by one split job, whose index must fit."""
    limit = memory.max_chunk_bytes(key_ranges)
    for f in files:
        if f.codec is not codecs.PLAIN and f.written_bytes > limit:
            raise ConfigError(
                f"compressed input '{f.path}' holds ~{f.data_bytes / 2**30:,.1f} GiB (estimated), "
                f"more than one split job can index with memory_mb={memory.memory_mb} "
                f"({limit / 2**30:,.1f} GiB); raise memory_mb or recompress it as several files"
            )


def check_groups(groups):
    """Paired inputs: groups of at least two files, all groups as wide."""
    if not all(isinstance(g, list) and len(g) >= 2 for g in groups):
        raise ConfigError("config key 'paired': give groups of aligned files, e.g. [[a.de, a.en], [b.de, b.en]]")
    widths = {len(g) for g in groups}
    if len(widths) > 1:
        raise ConfigError(f"config key 'paired': every group must have as many files (they have {sorted(widths)})")
    return widths.pop()


def make_paired_plan(groups, run, memory_mb, sources=()):
    """One chunk per group of aligned files, read together line by line; each
    group is a source (`sources`: their weights.Source, none: weights of 1)."""
    width = check_groups(groups)
    check_memory(memory_mb)
    check_output(run.output)
    paths = [(path, None, g) for g, group in enumerate(groups) for path in group]
    files = with_copies(load_inputs(paths, run.owners(), "config key 'paired'", list(range(len(groups)))), sources)
    total = total_data_bytes(files)
    memory = MemoryModel(memory_mb)
    check_scale(total, memory, Chunking())
    layout = bucket_layout(total, memory)
    grouped = [files[i : i + width] for i in range(0, len(files), width) if files[i].copies]
    chunks = tuple(tuple(Segment(f.index, 0, f.size) for f in group) for group in grouped)
    largest = max((sum(f.written_bytes for f in group) for group in grouped), default=0)
    return Plan(files, chunks, layout, memory, largest, width, sources or Plan.sources)
