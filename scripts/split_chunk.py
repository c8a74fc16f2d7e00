"""Rule split_chunk: give every record of a chunk its key and sort it into key ranges.

Usage (rules/split.smk):
  split_chunk.py --plan PLAN --chunk C --memory-mb M --run RUN --index INDEX
The plan file (snakeshuf.spec) says which byte ranges chunk C holds and how
records are keyed and sorted into key ranges.
"""

import argparse
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from snakeshuf import jobs
from snakeshuf import keys as keylib
from snakeshuf.aligned import aligned_batches
from snakeshuf.memory import MemoryModel
from snakeshuf.progress import JobProgress
from snakeshuf.errors import RecordTooLarge
from snakeshuf.records import RecordReader
from snakeshuf.runfile import RunWriter, as_records, take
from snakeshuf.spec import RunSpec


def group_by_key_range(batch, seed, stream, positions, key_ranges):
    """The batch's keys and record lengths regrouped by key range (input order
    within a key range), the counts and bytes of each key range, and the order
    that regroups the records."""
    keys = keylib.record_keys(seed, stream, positions)
    where = keylib.range_of(keys, key_ranges).astype(np.uint16 if key_ranges <= 1 << 16 else np.uint32)
    order = np.argsort(where, kind="stable")
    counts = np.bincount(where, minlength=key_ranges)
    lengths = np.diff(batch.ends, prepend=0).astype(np.uint32)
    byte_counts = np.bincount(where, weights=lengths, minlength=key_ranges).astype(np.int64)
    return keys[order], lengths[order], counts, byte_counts, order


def keyed_batches(spec, segments, memory):
    """(batch, key stream, key positions) for every batch of the chunk's records:
    a record is keyed by its file and byte offset, or, for aligned files read
    `spec.width` at a time, by their group and its line index."""
    files, width, separator = spec.files, spec.width, spec.separator
    if width > 1:
        for lo in range(0, len(segments), width):
            group = [files[s.file_index] for s in segments[lo : lo + width]]
            batches = aligned_batches(group, separator, memory.block_bytes // width, memory.batch_records // width)
            for batch in batches:
                yield batch, group[0].index // width, batch.offset + np.arange(len(batch.ends))
        return
    reader = RecordReader(separator, np.empty(memory.block_bytes + 1, np.uint8), memory.batch_records)
    for segment in segments:
        f = files[segment.file_index]
        start = max(segment.start, spec.header_bytes)  # every input starts with the header
        for batch in reader.batches(f, start, segment.end):
            yield batch, f.index, batch.offset + batch.starts


def split_chunk(spec, chunk, memory, run_path, index_path):
    records = nbytes = 0
    segments = spec.chunks[chunk]
    progress = JobProgress(f"chunk {chunk}", spec.chunk_bytes(chunk))
    # A background thread writes each spill while the next batch is read and
    # keyed; one spill's records at a time, so memory is as without it.
    with jobs.atomic_write(run_path, direct=True) as handle, ThreadPoolExecutor(1) as background:
        writer, writing = RunWriter(handle), None
        for batch, stream, positions in keyed_batches(spec, segments, memory):
            keys, lengths, counts, byte_counts, order = group_by_key_range(
                batch, spec.seed, stream, positions, spec.key_ranges
            )
            if writing:
                writing.result()
            # No name holds the records: the next take must find them freed.
            records_in_order = take(as_records(batch.data, batch.ends), order)
            writing = background.submit(writer.write_spill, keys, lengths, records_in_order, counts, byte_counts)
            del records_in_order, order
            records += len(batch.ends)
            nbytes += len(batch.data)
            progress.update(nbytes)
        if writing:
            writing.result()
    index = writer.index()
    with jobs.atomic_write(index_path) as handle:
        np.save(handle, index)
    return jobs.report(
        "split", chunk=chunk, records=records, bytes=nbytes, spills=writer.spills, sections=len(index),
        memory_mb=memory.memory_mb,
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
    memory = MemoryModel(args.memory_mb)
    try:
        split_chunk(RunSpec.read(args.plan), args.chunk, memory, args.run, args.index)
    except RecordTooLarge as error:
        raise RecordTooLarge(
            f"{error} (with memory_mb={memory.memory_mb} the longest is {error.limit} bytes); "
            f"set memory_mb to at least {memory.memory_for_record(error.length)}"
        ) from None


if __name__ == "__main__":
    jobs.run(main)
