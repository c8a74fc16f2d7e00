"""Rule split_chunk: give every record of a chunk its key and sort it into buckets.

Usage (from rules/split.smk):
  split_chunk.py --plan PLAN --chunk C --seed S --buckets K --memory-mb M
                 --run RUN --index INDEX [--separator BYTE] [--header-bytes N]
PLAN is the plan file (snakeshuf.plan.plan_file_text): chunk C's byte ranges.
"""

import argparse

import numpy as np

from snakeshuf import jobs
from snakeshuf import keys as keylib
from snakeshuf.aligned import aligned_batches
from snakeshuf.memory import MemoryModel
from snakeshuf.plan import read_plan_file
from snakeshuf.records import RecordTooLarge, read_batches
from snakeshuf.runfile import RunWriter, as_records, take


def group_by_bucket(batch, seed, stream, positions, buckets):
    """The batch's keys, record lengths and records regrouped by bucket (input
    order within a bucket)."""
    keys = keylib.record_keys(seed, stream, positions)
    bucket = keylib.bucket_of(keys, buckets).astype(np.uint16 if buckets <= 1 << 16 else np.uint32)
    order = np.argsort(bucket, kind="stable")
    counts = np.bincount(bucket, minlength=buckets)
    lengths = np.diff(batch.ends, prepend=0).astype(np.uint32)
    byte_counts = np.bincount(bucket, weights=lengths, minlength=buckets).astype(np.int64)
    return keys[order], lengths[order], take(as_records(batch.data, batch.ends), order), counts, byte_counts


def keyed_batches(files, segments, width, separator, header_bytes, memory):
    """(batch, key stream, key positions) for every batch of the chunk's records:
    a record is keyed by its file and byte offset, or, for aligned files read
    `width` at a time, by their group and its line index."""
    if width > 1:
        for lo in range(0, len(segments), width):
            group = [files[s.file_index] for s in segments[lo : lo + width]]
            batches = aligned_batches(group, separator, memory.block_bytes // width, memory.batch_records // width)
            for batch in batches:
                yield batch, group[0].index // width, batch.offset + np.arange(len(batch.ends))
        return
    buffer = np.empty(memory.block_bytes + 1, np.uint8)
    for segment in segments:
        f = files[segment.file_index]
        start = max(segment.start, header_bytes)  # every input starts with the header
        batches = read_batches(f.path, start, segment.end, f.size, separator, buffer, memory.batch_records, f.codec)
        for batch in batches:
            yield batch, f.index, batch.offset + batch.starts


def split_chunk(files, segments, width, seed, buckets, separator, header_bytes, memory, run_path, index_path):
    records = nbytes = 0
    with jobs.atomic_write(run_path, direct=True) as handle:
        writer = RunWriter(handle)
        for batch, stream, positions in keyed_batches(files, segments, width, separator, header_bytes, memory):
            writer.write_spill(*group_by_bucket(batch, seed, stream, positions, buckets))
            records += len(batch.ends)
            nbytes += len(batch.data)
    index = writer.index()
    with jobs.atomic_write(index_path) as handle:
        np.save(handle, index)
    return jobs.report(
        "split", records=records, bytes=nbytes, spills=writer.spills, sections=len(index),
        memory_mb=memory.memory_mb,
    )


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--chunk", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--buckets", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--separator", type=int, default=ord("\n"))
    parser.add_argument("--header-bytes", type=int, default=0, help="the header's length (left out)")
    parser.add_argument("--run", required=True)
    parser.add_argument("--index", required=True)
    args = parser.parse_args(argv)
    jobs.inject_faults(memory_mb=args.memory_mb)
    memory = MemoryModel(args.memory_mb)
    files, chunks, width = read_plan_file(args.plan)
    try:
        split_chunk(
            files, chunks[args.chunk], width, args.seed, args.buckets, args.separator, args.header_bytes,
            memory, args.run, args.index,
        )
    except RecordTooLarge as error:
        raise RecordTooLarge(
            f"{error} (with memory_mb={memory.memory_mb} the longest is {error.limit} bytes); "
            f"set memory_mb to at least {memory.memory_for_record(error.length)}"
        ) from None

if __name__ == "__main__":
    jobs.run(main)
