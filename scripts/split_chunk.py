"""Rule split_chunk: give every record of a chunk its key and sort it into key ranges.

Usage (rules/split.smk):
  split_chunk.py --plan PLAN --chunk C --memory-mb M --run RUN --index INDEX
The plan file (snakeshuf.planning.spec) says which byte ranges chunk C holds and how
records are keyed and sorted into key ranges.
"""

import argparse
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from snakeshuf.control.progress import JobProgress
from snakeshuf.errors import InputError, RecordTooLarge, WindowTooLarge
from snakeshuf.mixing import dedup
from snakeshuf.mixing.weights import copy_stream
from snakeshuf.outputs.layout import HEAD
from snakeshuf.planning import keys as keylib
from snakeshuf.planning.memory import MemoryModel
from snakeshuf.planning.spec import RunSpec
from snakeshuf.sources.reading import check_as_planned, for_each
from snakeshuf.records.aligned import aligned_batches
from snakeshuf.stages import jobs
from snakeshuf.stages.runfile import RunWriter, Spill, as_records, release_taken, take


def group_by_key_range(batch, keys, key_ranges, chosen=None):
    """The keys and record lengths of the batch's `chosen` records (all: None)
    regrouped by key range (input order within a key range), the counts and
    bytes of each key range, and the order that regroups the records. `keys`
    may be several copies' keys of the records, one copy after the other."""
    lengths = np.tile(np.diff(batch.ends, prepend=0).astype(np.uint32), len(keys) // max(1, len(batch.ends)))
    if chosen is not None:
        keys, lengths = keys[chosen], lengths[chosen]
    where = keylib.range_of(keys, key_ranges).astype(np.uint16 if key_ranges <= 1 << 16 else np.uint32)
    order = np.argsort(where, kind="stable")
    counts = np.bincount(where, minlength=key_ranges)
    byte_counts = np.bincount(where, weights=lengths, minlength=key_ranges).astype(np.int64)
    return keys[order], lengths[order], counts, byte_counts, order if chosen is None else chosen[order]


class SmallestKeys:
    """For a run that publishes the first n records of the order ('head'):
    the records of a chunk that can be among them. A record is among the n
    first overall only if it is among its own chunk's n first, so a record
    whose key is above the n-th smallest key the chunk has shown so far is
    never published: the split job leaves it out (those before are written)."""

    def __init__(self, n):
        self.n, self.smallest = n, np.empty(0, np.uint64)

    def chosen(self, keys):
        """The indices of `keys` that may be published; keeps the n smallest seen."""
        if len(self.smallest) == self.n:
            chosen = np.flatnonzero(keys <= self.smallest.max())  # equal keys: the order breaks the tie
        else:
            chosen = np.arange(len(keys))
        merged = np.concatenate((self.smallest, keys[chosen]))
        self.smallest = np.partition(merged, self.n - 1)[: self.n] if len(merged) > self.n else merged
        return chosen


def head_filter(spec, memory):
    """A SmallestKeys for a 'head' run whose n keys fit beside a batch's, else
    None; none either where candidates are chosen later (a candidate left
    out could have been among the chosen, and one kept may not be)."""
    if (spec.take is None or spec.take[0] != HEAD or not 0 < spec.take[1] <= memory.batch_records or spec.selects
            or spec.dedup):  # duplicates share keys: the n smallest may be fewer records
        return None
    return SmallestKeys(spec.take[1])


def keyed_batches(spec, segments, memory):
    """(batch, input file, key stream, key positions) for every batch of the
    chunk's records: a record is keyed by its file and position (a line's
    byte offset, a row's number), or, for aligned files read `spec.width` at
    a time, by their group (and its first file) and its line index."""
    files, width, separator = spec.files, spec.width, spec.separator
    if width > 1:
        for lo in range(0, len(segments), width):
            group = [files[s.file_index] for s in segments[lo : lo + width]]
            batches = aligned_batches(group, separator, memory.block_bytes // width, memory.batch_records // width,
                                      memory.window_bytes // width)
            for batch in batches:
                yield batch, group[0], group[0].index // width, batch.offset + np.arange(len(batch.ends))
        return
    reader = spec.records.reader(memory)
    for segment in segments:
        f = files[segment.file_index]
        start = max(segment.start, spec.header_bytes)  # every input starts with the header
        for batch in reader.batches(f, start, segment.end):
            yield batch, f, f.index, batch.positions


class ChunkWriter:
    """Writes a chunk's spills, each copy of a batch its own: a background
    thread writes one while the next is keyed and regrouped (one spill's
    records at a time, so memory is as without it)."""

    def __init__(self, handle, background):
        self.writer, self.background, self.writing = RunWriter(handle), background, None
        self.kept_bytes = 0

    def write(self, batch, keyed, chosen, key_ranges):
        """Write the `chosen` records of `batch` (None: all) as one spill;
        `keyed`: a Spill of the batch's keys (and tags), for its source."""
        keys, lengths, counts, byte_counts, order = group_by_key_range(batch, keyed.keys, key_ranges, chosen)
        self.wait()
        # No name holds the records: the next take must find them freed.
        records_in_order = take(as_records(batch.data, batch.ends), order % max(1, len(batch.ends)))
        tags = keyed.tags[order] if keyed.tags is not None else None
        spill = Spill(keys, lengths, records_in_order, keyed.file, keyed.candidates_of, tags)
        self.writing = self.background.submit(self.writer.write_spill, spill, counts, byte_counts)
        self.kept_bytes += int(byte_counts.sum())

    def wait(self):
        if self.writing:
            self.writing.result()
            self.writing = None
            release_taken()  # the spill's records, which Arrow's allocator would keep


# Records whose identities (Python bytes objects) a split job holds at once.
IDENTITY_SLICE = 1 << 14


class Deduplicator:
    """In a run that deduplicates (snakeshuf.mixing.dedup): each record's key and tag
    from its identity, and within a batch only the first of each identity."""

    def __init__(self, spec, memory):
        self.spec, self.memory, self.identities = spec, memory, {}
        self.dropped = {}  # duplicates, by source
        self.without_field = {}  # records dropped for want of the field ('missing: drop'), by source

    def keyed(self, batch, f, stream, positions):
        """(Spill of the batch's keys and tags, the indices of the records kept).
        Identities are Python objects: they are made IDENTITY_SLICE records
        at a time, and again for each duplicate when it is confirmed."""
        count = len(batch.ends)
        keys, tags = np.zeros(count, np.uint64), np.zeros(count, np.uint64)
        present = np.zeros(count, bool)
        for lo in range(0, count, IDENTITY_SLICE):
            found = batch_records(batch, lo, lo + IDENTITY_SLICE)
            if self.spec.dedup.field is not None:
                found = [self.identity(f, record, position)
                         for record, position in zip(found, positions[lo : lo + IDENTITY_SLICE].tolist())]
            here = np.array([d is not None for d in found], bool)
            present[lo : lo + len(found)] = here
            where = lo + np.flatnonzero(here)
            keys[where], tags[where] = dedup.identity_keys(self.spec.seed, [d for d in found if d is not None])
            del found
        if self.spec.dedup.missing == "keep":
            keys[~present] = keylib.record_keys(self.spec.seed, stream, positions[~present])
            tags[~present] = dedup.kept_tags(self.spec.seed, stream, positions[~present])
        candidates = np.arange(count) if self.spec.dedup.missing == "keep" else np.flatnonzero(present)
        later, first_of_later, firsts = dedup.duplicates_and_firsts(keys[candidates], tags[candidates])
        dedup.confirm(candidates[later], candidates[first_of_later], lambda i: self.identity_at(batch, f, i),
                      f"input '{f.path}': ")
        self.dropped[f.source] = self.dropped.get(f.source, 0) + len(later)
        self.without_field[f.source] = self.without_field.get(f.source, 0) + count - int(present.sum())
        return Spill(keys, None, None, f.index, tags=tags), np.sort(candidates[firsts])

    def copies(self, distinct, group, candidates_of):
        """(Spill of the keys and tags of copies `group` of a batch's records,
        the indices of those written) from keyed()'s (Spill, kept indices)."""
        keyed, kept = distinct
        keys = joined([dedup.copy_keys(self.spec.seed, keyed.keys, copy) for copy in group])
        written = joined([kept + i * len(keyed.keys) if i else kept for i in range(len(group))])
        return Spill(keys, None, None, keyed.file, candidates_of, joined([keyed.tags] * len(group))), written

    def identity_at(self, batch, f, i):
        """The identity of the batch's i-th record (one that has one)."""
        record = batch_records(batch, i, i + 1)[0]
        return self.identities[f.index].of(record) if self.spec.dedup.field is not None else record

    def identity(self, f, record, position):
        if f.index not in self.identities:
            self.identities[f.index] = self.spec.records.identities(f.path)
        if self.identities[f.index].format == "jsonl" and len(record) > self.memory.field_record_bytes:
            raise InputError(
                f"input '{f.path}', {self.line(f, position)}: a record of {len(record):,} bytes, too long to "
                f"read its field {self.spec.dedup.field!r} with memory_mb={self.memory.memory_mb} (parsed JSON takes "
                f"many times its bytes); set memory_mb to at least {self.memory.memory_for_field_record(len(record))}"
            )
        try:
            found = self.identities[f.index].of(record)
        except dedup.BadRecord as problem:
            raise InputError(f"input '{f.path}', {self.line(f, position)}: the record {problem}; config key "
                             "'dedup' reads a field of every record") from None
        if found is None and self.spec.dedup.missing == "error":
            raise InputError(
                f"input '{f.path}', {self.line(f, position)}: the record has no field "
                f"{self.spec.dedup.field!r} to deduplicate by; fix the record, or set "
                "dedup: {missing: keep} (kept, never a duplicate) or {missing: drop} (snakeshuf --dedup-missing "
                "keep or drop)"
            )
        return found

    def line(self, f, position):
        return self.spec.records.place(f, position)


def joined(arrays):
    """The arrays one after the other; a single one as it is (a split job's memory is tight)."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def batch_records(batch, lo, hi):
    """Records lo .. hi - 1 of a batch as bytes objects (in time proportional to hi - lo)."""
    ends = batch.ends[lo:hi].tolist()
    if not ends:
        return []
    first = int(batch.ends[lo - 1]) if lo else 0
    data = batch.data[first : ends[-1]].tobytes()
    starts = [first, *ends[:-1]]
    return [data[s - first : e - first] for s, e in zip(starts, ends)]


def copy_groups(copies, batch, memory):
    """(copies, whether they are candidates) of each spill a batch's copies
    make: whole copies together as far as a spill's records and bytes allow
    (a weight of a million on a small file is a few spills, not a million),
    then the candidate for the fraction."""
    records, nbytes = max(1, len(batch.ends)), max(1, len(batch.data))
    together = max(1, min(memory.batch_records // records, memory.block_bytes // nbytes))
    for first in range(0, copies.whole, together):
        yield range(first, min(copies.whole, first + together)), False
    if copies.fraction:
        yield range(copies.whole, copies.whole + 1), True


def copy_keys(seed, stream, copies, positions):
    """The keys of `copies` of the records at `positions` of a key stream, copy by copy."""
    streams = np.array([copy_stream(stream, copy) for copy in copies], np.uint64)
    return keylib.record_keys(seed, streams[:, None], np.asarray(positions, np.uint64)[None, :]).ravel()


def split_chunk(spec, chunk, memory, run_path, index_path):
    records = nbytes = written_bytes = 0
    by_source = {}
    head = head_filter(spec, memory)
    deduplicator = Deduplicator(spec, memory) if spec.dedup else None
    segments = spec.chunks[chunk]
    progress = JobProgress(f"chunk {chunk}", spec.chunk_bytes(chunk))
    with jobs.atomic_write(run_path, direct=True) as handle, ThreadPoolExecutor(1) as background:
        out = ChunkWriter(handle, background)
        for batch, f, stream, positions in keyed_batches(spec, segments, memory):
            copies = spec.sources[f.source].copies
            distinct = deduplicator.keyed(batch, f, stream, positions) if deduplicator else None
            for group, candidate in copy_groups(copies, batch, memory):
                candidates_of = 1 + f.source if candidate else 0
                if distinct:
                    keyed, chosen = deduplicator.copies(distinct, group, candidates_of)
                else:
                    keys = copy_keys(spec.seed, stream, group, positions)
                    keyed, chosen = Spill(keys, None, None, f.index, candidates_of), head.chosen(keys) if head else None
                out.write(batch, keyed, chosen, spec.key_ranges)
            records += len(batch.ends)
            nbytes += len(batch.data)
            written_bytes += len(batch.data) * copies.written
            by_source[f.source] = by_source.get(f.source, 0) + len(batch.ends)
            progress.update(nbytes)
        out.wait()
        for_each(check_as_planned, [spec.files[segment.file_index] for segment in segments])
    index = out.writer.index()
    with jobs.atomic_write(index_path) as handle:
        np.save(handle, index)
    return jobs.report(
        "split", chunk=chunk, records=records, bytes=nbytes, spills=out.writer.spills, sections=len(index),
        left_out_bytes=written_bytes - out.kept_bytes, memory_mb=memory.memory_mb,
        source_records={str(source): n for source, n in by_source.items()},
        **({"duplicates": {str(s): n for s, n in deduplicator.dropped.items()},
            "without_field": {str(s): n for s, n in deduplicator.without_field.items()}} if deduplicator else {}),
    )


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--chunk", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--index", required=True)
    args = parser.parse_args(argv)
    jobs.inject_faults(memory_mb=args.memory_mb)
    spec = RunSpec.read(args.plan)
    jobs.claim(spec.paths, f"split_chunk-{args.chunk}")
    memory = MemoryModel(args.memory_mb, bool(spec.dedup))
    try:
        split_chunk(spec, args.chunk, memory, args.run, args.index)
    except WindowTooLarge as error:
        raise WindowTooLarge(
            f"{error}, more than a split job has with memory_mb={memory.memory_mb}; "
            f"set memory_mb to at least {memory.memory_for_window(error.needed * spec.width)}"
        ) from None
    except RecordTooLarge as error:
        raise RecordTooLarge(
            f"{error} (with memory_mb={memory.memory_mb} the longest is {error.limit} bytes); "
            f"set memory_mb to at least {memory.memory_for_record(error.length)}"
        ) from None


if __name__ == "__main__":
    jobs.run(main)
