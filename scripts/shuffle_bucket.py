"""Rule shuffle_bucket: read one bucket's sections from every run file, order the
records by key and write them where they go in the output.

A bucket is a few consecutive key ranges (snakeshuf.planning.plan); the job orders and
writes them one after the other, and reads the next while it writes one when
both fit in its memory (the plan sizes them so).

The bucket table gives the bucket's place in the one order, so its records go
straight to their final place: for one plain output, its region of the output
file (under its temporary name, written with pwrite, so gather copies
nothing); otherwise pieces, one per output file they fall in (snakeshuf.stages.sinks),
which gather joins. What the job wrote is recorded for gather to check
(snakeshuf.stages.buckets).

Usage (rules/shuffle.smk):
  shuffle_bucket.py --plan PLAN --bucket J --memory-mb M [--table TABLE --bounds BOUNDS] --stats JSON
The run files and their indexes are where the plan says (snakeshuf.stages.scratch).
Without --table (a small plan: no rule tally_buckets), the job makes the
bucket table from the indexes itself.
"""

import argparse
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from snakeshuf.control.progress import JobProgress
from snakeshuf.errors import IntegrityError, RecordTooLarge
from snakeshuf.mixing import dedup
from snakeshuf.planning import keys as keylib
from snakeshuf.planning.memory import MB, OUTPUT_SLICE_BYTES, MemoryModel
from snakeshuf.planning.spec import RunSpec
from snakeshuf.stages import jobs, runfile, runindex, tally
from snakeshuf.stages.buckets import BucketStats
from snakeshuf.stages.directio import DirectReader, aligned_buffer
from snakeshuf.stages.sinks import PieceSink, RegionSink

# Threads reading a key range's run file sections, each with a staging
# buffer of READ_STAGING_BYTES for O_DIRECT. A section is a key range's share
# of one spill (~0.75 MB at 16 GiB with memory_mb=512; larger ones take
# several reads); the buffers live beside the writer's while a job reads
# ahead, so they are kept small.
READ_THREADS = 2
READ_STAGING_BYTES = 1 << 20
# Records whose output slices are cut at a time (12 bytes each of arrays).
SLICING_RECORDS = 1 << 16


class BucketOutput:
    """Writes records in key order into a sink, keeping count of them."""

    def __init__(self, sink, separator, where):
        self.sink, self.separator, self.where = sink, separator, where
        self.records = self.nbytes = self.key_sum = 0

    def write_sorted(self, keys, lengths, data, published=None):
        """Write the records of `data` (of `lengths`) in the order of their `keys`,
        in slices of at most OUTPUT_SLICE_BYTES cut where output files begin;
        a record longer than that is written from where it lies, not copied.
        `published`: the indices of the records published (None: all)."""
        records = runfile.records_of_lengths(data, lengths, self.separator, self.where)
        offsets = np.frombuffer(records.buffers()[1], np.int64)
        if published is not None:
            keys = keys[published]
            order = published[keylib.order_by_key(keys)]
        else:
            order = keylib.order_by_key(keys)
        for lo in range(0, len(order), SLICING_RECORDS):
            block = order[lo : lo + SLICING_RECORDS]
            for first, last in self.slices(lengths[block]):
                if last - first == 1 and lengths[block[first]] > OUTPUT_SLICE_BYTES:
                    record = int(block[first])
                    taken = memoryview(data)[offsets[record] : offsets[record + 1]]
                else:
                    taken = runfile.take(records, block[first:last])
                self.sink.write(taken, lengths[block[first:last]])
                self.nbytes += len(taken)
        self.records += len(keys)
        self.key_sum = (self.key_sum + keylib.key_checksum(keys)) & keylib.MASK64
        runfile.release_taken()

    def skip(self, totals):
        """Account for a key range's records without reading them (after the end of the output)."""
        records, nbytes, key_sum = totals
        self.records += records
        self.nbytes += nbytes
        self.key_sum = (self.key_sum + key_sum) & keylib.MASK64

    def slices(self, lengths):
        """(first, last) of consecutive records of `lengths` (in output order)
        that make one write: at most OUTPUT_SLICE_BYTES (or one record), within
        the room of the output file being written."""
        ends = np.cumsum(lengths, dtype=np.int64)
        first = 0
        while first < len(lengths):
            done = int(ends[first - 1]) if first else 0
            last = int(np.searchsorted(ends, done + OUTPUT_SLICE_BYTES, side="right"))
            last = min(max(last, first + 1), first + self.sink.room())
            yield first, last
            first = last


class PartReader:
    """Reads a key range's sections from every run file straight into one of
    its slots (keys, record lengths, records), a run file a task,
    READ_THREADS at a time: while one thread waits on the disk another copies
    and checksums (NumPy, CRC-32C and preadv release the GIL). The slots and
    each thread's staging buffer serve the whole job: arrays allocated afresh
    for every key range would come back from the C allocator's per-thread
    heaps, which keep what is freed (measured: 164 MB peaks at a 160 MB budget)."""

    def __init__(self, slots, records, nbytes, tagged):
        self.capacity, self.tagged = (records, nbytes), tagged  # tagged: the records have tags (dedup)
        self.slots = [None] * slots
        self.pool = ThreadPoolExecutor(READ_THREADS)
        self.staging = threading.local()

    def load(self, sections, slot):
        if self.slots[slot] is None:
            records, nbytes = self.capacity
            self.slots[slot] = (np.empty(records, np.uint64), np.empty(records, np.uint32), np.empty(nbytes, np.uint8),
                                np.empty(records if self.tagged else 0, np.uint64))
        records, nbytes, _ = expected_totals(sections)
        keys, lengths, data, tags = (array[:n] for array, n in zip(self.slots[slot], (records, records, nbytes, records)))
        tasks, k, d = [], 0, 0
        for run, run_rows in sections:
            places = []
            for row in run_rows:
                n, b = int(row[runindex.RECORDS]), int(row[runindex.NBYTES])
                places.append((row, keys[k : k + n], lengths[k : k + n], data[d : d + b],
                               tags[k : k + n] if self.tagged else None))
                k, d = k + n, d + b
            tasks.append((run, places))
        for done in [self.pool.submit(self.read_run_sections, *task) for task in tasks]:
            done.result()
        return keys, lengths, data, tags if self.tagged else None

    def read_run_sections(self, run, places):
        """Read each (row, keys, lengths, data, tags) place's section into its arrays."""
        if not hasattr(self.staging, "buffer"):
            self.staging.buffer = aligned_buffer(READ_STAGING_BYTES)
        with DirectReader(run, self.staging.buffer) as reader:
            for row, *arrays in places:
                runfile.read_section(reader, row, *arrays)

    def release(self):
        """Free the slots (a key range done in several passes needs the memory)."""
        self.slots = [None] * len(self.slots)

    def close(self):
        self.pool.shutdown()


# A key range too large for one pass is measured in this many key sub-ranges,
# and each pass takes consecutive ones up to what fits.
FINE_SUB_RANGES = 1 << 16
MAX_PASSES = 64  # each pass reads all of the key range's sections


class KeyRangeInPasses:
    """A key range too large to order at once, read a pass at a time: each
    pass is a run of consecutive fine key sub-ranges whose records fit,
    measured exactly from the sections' keys and lengths (a few long records
    are not average ones), and filled into arrays of its own size."""

    def __init__(self, sections, spec, chooser):
        self.sections, self.key_ranges, self.separator = sections, spec.key_ranges, spec.records.record_end
        self.tagged, self.selects = bool(spec.dedup), spec.selects
        self.staging = aligned_buffer(READ_STAGING_BYTES)
        self.chooser = chooser  # of candidates, counted in full by the plan: passes may hold fewer

    def reserve(self):
        """What reading one section holds beside a pass: its keys, lengths and
        records, and the copy of the records it gives the pass."""
        rows = np.concatenate([run_rows for _, run_rows in self.sections])
        return 2 * int(rows[:, runindex.NBYTES].max()) + 12 * int(rows[:, runindex.RECORDS].max())

    def plan(self, memory):
        """[(first, last, records, bytes)] of each pass, in key order; a key
        range whose long records leave too little room (a fine sub-range that
        does not fit, or more than MAX_PASSES passes, each of which reads every
        section) is refused, naming the memory it needs, for the retry."""
        budget = memory.shuffle_bytes - self.reserve()
        counts = np.zeros(FINE_SUB_RANGES, np.int64)
        sizes = np.zeros(FINE_SUB_RANGES, np.int64)
        longest = 0
        for reader, row in self.rows():
            keys, lengths = runfile.read_keys_and_lengths(reader, row)
            longest = max(longest, int(lengths.max(initial=0)))
            fine = keylib.sub_range_of(keys, self.key_ranges, FINE_SUB_RANGES)
            counts += np.bincount(fine, minlength=FINE_SUB_RANGES)
            sizes += np.bincount(fine, weights=lengths, minlength=FINE_SUB_RANGES).astype(np.int64)
        fine_needs = sizes + counts * memory.shuffle_bytes_per_record
        needs = np.cumsum(fine_needs)
        enough = max(int(fine_needs.max()), -(-int(needs[-1]) // MAX_PASSES))
        if enough > budget:
            why = (
                f"holds a record of {longest:,} bytes, too long to order in passes"
                if int(fine_needs.max()) > budget
                else f"would take more than {MAX_PASSES} passes (far more records than planned: a very compressible input?)"
            )
            raise RecordTooLarge(
                f"a key range of {int(sizes.sum()):,} bytes {why} with memory_mb={memory.memory_mb}; "
                f"set memory_mb to at least {memory.memory_mb + -(-(enough - budget) // MB)}",
                longest,
            )
        passes, first = [], 0
        while first < FINE_SUB_RANGES:
            before = int(needs[first - 1]) if first else 0
            last = max(first + 1, int(np.searchsorted(needs, before + budget, side="right")))
            passes.append((first, last, int(counts[first:last].sum()), int(sizes[first:last].sum())))
            first = last
        return [p for p in passes if p[2]]

    def load(self, planned):
        """The keys, lengths, records and tags (None in a run without) of one
        planned pass, and each record's input file and index column
        CANDIDATES_OF (for dedup)."""
        first, last, records, nbytes = planned
        keys, lengths, data = np.empty(records, np.uint64), np.empty(records, np.uint32), np.empty(nbytes, np.uint8)
        tags, files = np.empty(records if self.tagged else 0, np.uint64), np.empty(records, np.int32)
        candidates_of = np.empty(records if self.tagged and self.selects else 0, np.int32)
        k = d = 0
        for reader, row in self.rows():
            chosen_keys, chosen_lengths, pieces, chosen_tags = self.chosen(reader, row, first, last)
            n = len(chosen_keys)
            if k + n > records or d + int(chosen_lengths.sum(dtype=np.uint64)) > nbytes:
                raise self.changed()
            keys[k : k + n], lengths[k : k + n], files[k : k + n] = chosen_keys, chosen_lengths, row[runindex.FILE]
            if len(candidates_of):
                candidates_of[k : k + n] = row[runindex.CANDIDATES_OF]
            if self.tagged:
                tags[k : k + n] = chosen_tags
            k += n
            for piece in pieces:
                data[d : d + len(piece)] = piece
                d += len(piece)
            del chosen_keys, chosen_lengths, pieces  # before the next section is read
            runfile.release_taken()
        if (k, d) != (records, nbytes) and not (self.chooser and k <= records and d <= nbytes):
            raise self.changed()
        return (keys[:k], lengths[:k], data[:d], tags[:k] if self.tagged else None), (files[:k], candidates_of[:k])

    def chosen(self, reader, row, first, last):
        """One section's records whose keys fall in fine sub-ranges [first,
        last): (keys, lengths, pieces of their bytes in the same order). A
        long record is a view of the section, not a copy (a pass's order
        within is free: write_sorted orders it); the rest of the section is
        freed once the pieces are."""
        keys, lengths, data, tags = runfile.read_section(reader, row)
        fine = keylib.sub_range_of(keys, self.key_ranges, FINE_SUB_RANGES)
        chosen = np.flatnonzero((fine >= first) & (fine < last))
        if self.chooser and row[runindex.CANDIDATES_OF]:
            chosen = chosen[self.chooser.chosen(keys[chosen], int(row[runindex.CANDIDATES_OF]))]
        records = runfile.records_of_lengths(data, lengths, self.separator, f"run file '{reader.path}'")
        offsets = np.frombuffer(records.buffers()[1], np.int64)
        long = chosen[lengths[chosen] > OUTPUT_SLICE_BYTES]
        short = chosen[lengths[chosen] <= OUTPUT_SLICE_BYTES]
        pieces = [data[offsets[i] : offsets[i + 1]] for i in long]
        if len(short):
            pieces.append(np.frombuffer(runfile.take(records, short), np.uint8))
        order = np.concatenate((long, short))  # the split job left no duplicates within a section
        return keys[order], lengths[order], pieces, tags[order] if tags is not None else None

    def rows(self):
        """(reader, index row) of every section, run file by run file."""
        for run, run_rows in self.sections:
            with DirectReader(run, self.staging) as reader:
                for row in run_rows:
                    yield reader, row

    def changed(self):
        return IntegrityError(
            f"the run files of key range {int(self.sections[0][1][0][runindex.KEY_RANGE])} changed while it "
            "was read in passes; delete the scratch directory and run again"
        )


def expected_totals(sections, candidates=True):
    """Records, bytes and key checksum of the sections' rows (without
    candidates' if not `candidates`)."""
    records = nbytes = key_sum = 0
    for _, rows in sections:
        if not candidates:
            rows = rows[rows[:, runindex.CANDIDATES_OF] == 0]
        records += int(rows[:, runindex.RECORDS].sum())
        nbytes += int(rows[:, runindex.NBYTES].sum())
        key_sum += int(rows[:, runindex.KEY_SUM].sum(dtype=np.uint64))
    return records, nbytes, key_sum & keylib.MASK64


def published_totals(sections, key_range, chosen):
    """What a key range publishes: its sections' records, of candidates only
    those the selection chose; in a run that deduplicates, what the tally counted."""
    if chosen is None:
        return expected_totals(sections)
    if isinstance(chosen, dedup.Distinct):
        return tuple(int(v) for v in chosen.ranges[key_range])
    records, nbytes, key_sum = expected_totals(sections, candidates=False)
    extra = [int(v) for v in chosen.ranges[key_range]]
    return records + extra[0], nbytes + extra[1], (key_sum + extra[2]) & keylib.MASK64


def origins(sections, selects):
    """The input file and the index column CANDIDATES_OF (in a run that
    `selects`, else empty) of each record of the sections, in the order they are read."""
    rows = np.concatenate([run_rows for _, run_rows in sections] or [np.empty((0, len(runindex.COLUMNS)), np.uint64)])
    counts = rows[:, runindex.RECORDS].astype(np.int64)
    files = np.repeat(rows[:, runindex.FILE].astype(np.int32), counts)
    return files, np.repeat(rows[:, runindex.CANDIDATES_OF].astype(np.int32), counts if selects else 0)


def summed(totals):
    """(records, bytes, key checksum) of several such triples."""
    records, nbytes, key_sum = (sum(column) for column in zip(*totals, (0, 0, 0)))
    return records, nbytes, key_sum & keylib.MASK64


def published_indices(sections, keys, chooser):
    """The indices of a loaded key range's records that are published (None: all)."""
    rows = [row for _, run_rows in sections for row in run_rows]
    if chooser is None or not any(row[runindex.CANDIDATES_OF] for row in rows):
        return None
    mask, k = np.empty(len(keys), bool), 0
    for row in rows:
        n = int(row[runindex.RECORDS])
        mask[k : k + n] = chooser.chosen(keys[k : k + n], int(row[runindex.CANDIDATES_OF]))
        k += n
    return np.flatnonzero(mask)


class BucketWriter:
    """Writes a bucket's key ranges in order into one BucketOutput. When the
    two largest fit in memory together, it reads the next key range while it
    orders and writes one."""

    def __init__(self, output, memory, spec, chosen):
        self.output, self.memory, self.spec = output, memory, spec
        self.chosen = chosen  # selection.Selection, or None
        self.chooser = chosen.chooser() if spec.selects else None
        self.keeper = dedup.Keeper(spec) if spec.dedup else None
        self.passes = 1  # the most any key range took

    def write(self, parts, first_range, progress):
        self.first_range = first_range
        sizes = [expected_totals(sections)[:2] for sections in parts]
        passes = [self.memory.shuffle_passes(*size) for size in sizes]
        self.passes = 1  # raised to what a key range read in passes takes (_write)
        whole = [size for size, n in zip(sizes, passes) if n == 1]
        largest = (max((r for r, _ in whole), default=0), max((b for _, b in whole), default=0))
        ahead = len(whole) > 1 and self.memory.read_ahead_need(*largest) <= self.memory.shuffle_bytes
        reader = PartReader(2 if ahead else 1, *largest, tagged=bool(self.spec.dedup))
        with ThreadPoolExecutor(1) as background:
            try:
                self._write(parts, passes, reader, background if ahead else None, progress)
            finally:
                reader.close()

    def _write(self, parts, passes, reader, background, progress):
        coming = None
        for p, sections in enumerate(parts):
            if self.output.sink.past_the_end:  # the rest is after what the run publishes
                if coming:
                    coming.result()
                    coming = None
                self.output.skip(published_totals(sections, self.first_range + p, self.chosen))
                continue
            if passes[p] > 1:
                reader.release()
                key_range = KeyRangeInPasses(sections, self.spec, None if self.keeper else self.chooser)
                planned = key_range.plan(self.memory)
                self.passes = max(self.passes, len(planned))
                for one_pass in planned:
                    loaded, origin = key_range.load(one_pass)
                    self.output.write_sorted(*loaded[:3], self.distinct(loaded, origin) if self.keeper else None)
                    progress.update(self.output.nbytes)
                    del loaded, origin  # before the next pass is loaded: the plan fits one pass, not two
                continue
            slot = p % 2 if background else 0
            current = coming.result() if coming else reader.load(sections, slot)
            coming = None
            if background and p + 1 < len(parts) and passes[p + 1] == 1:
                coming = background.submit(reader.load, parts[p + 1], 1 - slot)
            if self.keeper:
                published = self.distinct(current, origins(sections, self.spec.selects))
            else:
                published = published_indices(sections, current[0], self.chooser)
            self.output.write_sorted(*current[:3], published)
            progress.update(self.output.nbytes)

    def distinct(self, loaded, origin):
        """The indices of the loaded records a run that deduplicates publishes:
        the first of each pair (dedup.Keeper), of candidates those chosen."""
        files, candidates_of = origin
        published = self.keeper.published(loaded, files)
        if self.chooser is None:
            return published
        published = np.arange(len(files)) if published is None else published
        return published[self.chooser.chosen(loaded[0][published], candidates_of[published])]


def check_against_table(row, totals, where):
    if (row["records"], row["bytes"], row["key_sum"]) != totals:
        raise IntegrityError(
            f"{where}: the run indexes list {totals[0]} records / {totals[1]} bytes but the bucket "
            f"table {row['records']} / {row['bytes']} (or the key checksums differ): an index "
            "changed after the table was made, or is damaged; delete the scratch directory and run again"
        )


def open_sink(spec, row, bounds, bucket):
    if spec.in_place:
        return RegionSink(spec.target, row["offset"])
    return PieceSink(spec, bucket, bounds, (row["first_record"], row["records"]))


def shuffle_bucket(spec, bucket, memory, args):
    """`args`: the declared files (table and bounds none without a tally job, stats)."""
    table, bounds, chosen = tally.load_or_make(spec, args)
    parts = runindex.bucket_sections(spec, bucket)
    first_range = bucket * spec.parts
    by_part = [published_totals(sections, first_range + p, chosen) for p, sections in enumerate(parts)]
    totals = summed(by_part)
    where = f"bucket {bucket}"
    row = tally.bucket_row(table, bucket)
    check_against_table(row, totals, where)
    if not spec.in_place and row["first_record"] >= bounds[-1]:
        # All after what the run publishes (head, fraction): nothing to order.
        report = jobs.report("shuffle", bucket=bucket, records=totals[0], bytes=totals[1], passes=0,
                             memory_mb=memory.memory_mb)
        BucketStats(bucket, *totals, job=report, pieces=()).save(args.stats)
        return
    sink = open_sink(spec, row, bounds, bucket)
    output = BucketOutput(sink, spec.records.record_end, where)
    writer = BucketWriter(output, memory, spec, chosen)
    writer.write(parts, first_range, JobProgress(where, totals[1]))
    sink.close()
    if (output.records, output.nbytes, output.key_sum) != totals:
        raise IntegrityError(
            f"{where}: wrote {output.records} records / {output.nbytes} bytes but the run "
            f"indexes list {totals[0]} / {totals[1]} (or the key checksums differ)"
        )
    report = jobs.report("shuffle", bucket=bucket, records=totals[0], bytes=totals[1], passes=writer.passes,
                         memory_mb=memory.memory_mb)
    BucketStats(bucket, *totals, job=report, **sink.report()).save(args.stats)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--bucket", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    tally.add_arguments(parser)
    parser.add_argument("--stats", required=True, help="what this job wrote, for gather")
    args = parser.parse_args(argv)
    jobs.inject_faults(bucket=args.bucket, memory_mb=args.memory_mb)
    spec = RunSpec.read(args.plan)
    jobs.claim(spec.paths, f"shuffle_bucket-{args.bucket}")
    shuffle_bucket(spec, args.bucket, MemoryModel(args.memory_mb, bool(spec.dedup)), args)


if __name__ == "__main__":
    jobs.run(main)
