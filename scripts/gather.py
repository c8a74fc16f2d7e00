"""Rule gather: check everything the bucket jobs wrote, join it into the output
files, deliver them (snakeshuf.outputs.destinations: an object is uploaded
here), write the summary and rename files into place (the last step, so a
final name always means a complete, checked output).

A region or piece that does not match what its bucket job recorded (a damaged
or deleted file) has its bucket's stats removed, so that running the same
command again redoes exactly those buckets.

Usage (rules/gather.smk):
  gather.py --plan PLAN --receipt FILE --verify {changed,always} --split-logs PATTERN --threads N --memory-mb M
            [--table TABLE --bounds BOUNDS --tally-log LOG] [--keep-scratch] [--leave-to-publish]
The bucket jobs' stats are the plan's (snakeshuf.stages.scratch names them), so
that no command line has to hold thousands of paths; PATTERN is the split
jobs' log with "{chunk}" for the chunk. Without --table (a small plan: no
rule tally_buckets), gather makes the bucket table from the indexes itself.
"""

import argparse
import os

from snakeshuf.errors import IntegrityError
from snakeshuf.outputs import provenance, publishing, summary
from snakeshuf.outputs.namespace import SUMMARY
from snakeshuf.planning import keys
from snakeshuf.planning.spec import RunSpec
from snakeshuf.records import codecs
from snakeshuf.records.lines import common_header
from snakeshuf.sources.reading import for_each, open_input, reported, size_of
from snakeshuf.stages import buckets, jobs, tally
from snakeshuf.stages.buckets import BucketStats


def input_bytes(files, separator, header_bytes):
    """Bytes the split jobs must write: each input's records (a separator
    added where its last record lacks one; not its header) once per copy.
    Unknown (None) if an input is compressed: the decompressors check those
    streams against their own checksums."""
    if any(f.codec is not codecs.PLAIN for f in files):
        return None
    return sum(for_each(lambda f: (record_bytes(f, separator) - header_bytes) * f.copies, files))


def record_bytes(f, separator):
    """An input's bytes, and one for a separator its last record lacks."""
    with reported(f.path), open_input(f.path) as handle:
        size = size_of(handle)
        if size:
            handle.seek(size - 1)
            size += handle.read(1)[0] != separator
    return size


def redo_damaged(spec, stats, stats_paths, verify):
    damaged = buckets.damaged(stats, spec.target, verify)
    for bucket in damaged:
        os.remove(stats_paths[bucket])
    if damaged:
        what = f"region(s) of '{spec.target}'" if spec.in_place else "piece files"
        raise IntegrityError(
            f"{len(damaged)} bucket {what} are missing or do not match what "
            "their bucket jobs recorded (the file was changed or removed); their records were "
            "not published. Run the same command again: it redoes exactly those buckets."
        )


def check_stages(spec, stats, tallied, header, split_reports):
    """Every stage accounts for the same records, bytes and key checksum: what
    the split jobs wrote for publishing (`tallied`: the bucket table and the
    selection), what the bucket jobs wrote, and the inputs' copies, less what
    the split jobs of a 'head' run left out, if their reports say, and the
    candidates the selection did not choose."""
    table, chosen = tallied
    buckets.check_totals({
        "the split jobs": tally.totals(table),
        "the bucket jobs": {
            "records": sum(s.records for s in stats),
            "bytes": sum(s.bytes for s in stats),
            "key_sum": sum(s.key_sum for s in stats) & keys.MASK64,
        },
    })
    from_inputs = input_bytes(spec.files, spec.separator, len(header))
    if spec.take is None and not spec.dedup:  # only a 'head' run's, or one that deduplicates, leave records out
        left_out = [0]
    else:
        left_out = [report.get("left_out_bytes", 0) if report else None for report in split_reports]
    if from_inputs is not None and None not in left_out:
        written = tally.totals(table)["bytes"] + (chosen.unchosen_bytes if chosen else 0)
        buckets.check_totals({"the split jobs": {"bytes": written}, "the inputs": {"bytes": from_inputs - sum(left_out)}})


def finish_in_place(spec, header, total):
    """The one-file layout: the bucket jobs wrote the records in place; the file, under its temporary name."""
    with open(spec.target, "r+b") as handle:
        os.pwrite(handle.fileno(), header, 0)
        handle.truncate(len(header) + total)
        os.fsync(handle.fileno())
    return [spec.target], {}


def join_pieces(spec, stats, header, args):
    """Each output file (its temporary name): the header, then its pieces in
    bucket order, as the record format writes them (`args.threads` at once);
    and what the format adds to the job's report."""
    by_file = [[] for _ in spec.outputs]
    for s in stats:  # in bucket order
        for piece in s.pieces:
            by_file[piece.file * spec.width + piece.column].append(piece)
    partials = [spec.destination.staged(spec, i) for i in range(len(spec.outputs))]
    for partial in partials:
        os.makedirs(os.path.dirname(partial) or ".", exist_ok=True)
    return partials, spec.records.write_outputs(list(zip(partials, by_file)), header, args.threads, args.memory_mb)


def split_reports(spec, args):
    """Each split job's report, None where its log has none."""
    return [summary.last_report(args.split_logs.format(chunk=chunk)) for chunk in range(len(spec.chunks))]


def write_summary(spec, stats, tallied, entries, args, joining):
    """The summary: the totals, each source, each output file and each stage
    (the split and tally jobs' reports are in their logs, the bucket jobs' in
    their stats, and `joining` adds to this job's)."""
    table, chosen = tallied
    totals = tally.totals(table)
    split = split_reports(spec, args)
    if all(split):  # a 'head' run's split jobs pass on only the records it may publish
        totals["input_records"] = sum(report["records"] for report in split)
    totals["sources"] = summary.source_counts(spec, split, chosen)
    reports = {
        "split": split,
        "tally": [summary.last_report(args.tally_log)] if args.tally_log else [],
        "shuffle": [s.job for s in stats],
        "gather": [jobs.report("gather", records=totals["records"], outputs=len(entries), **joining)],
    }
    totals["header_bytes"] = spec.header_bytes
    replaced = publishing.superseded(spec, provenance.read_record(spec.output + SUMMARY))
    record = {**summary.build(spec, totals, entries, reports), "superseded": replaced}
    spec.destination.write_record(spec.output + SUMMARY, record)


def gather(args):
    spec = RunSpec.read(args.plan)
    jobs.claim(spec.paths, "gather")
    stats_paths = [spec.paths.stats(bucket) for bucket in range(spec.buckets)]
    stats = [BucketStats.load(path) for path in stats_paths]
    header = common_header(spec.files[:1], spec.header_lines, spec.separator) if spec.header_lines else b""
    redo_damaged(spec, stats, stats_paths, args.verify)
    table, bounds, chosen = tally.load_or_make(spec, args)
    buckets.check_against_table(stats, table)
    if not spec.in_place:
        buckets.check_cut(stats, bounds, spec.width)
    check_stages(spec, stats, (table, chosen), header, split_reports(spec, args))
    total = sum(s.bytes for s in stats)
    written, joining = finish_in_place(spec, header, total) if spec.in_place else join_pieces(spec, stats, header, args)
    tokens = [spec.destination.sign(staged, spec.output) for staged in written]
    entries = spec.destination.deliver(spec, tokens)
    write_summary(spec, stats, (table, chosen), entries, args, joining)
    if args.leave_to_publish:
        remove_pieces(stats)
        open(args.receipt, "wb").close()
        return
    publishing.move_into_place(spec)
    remove_pieces(stats)
    publishing.finish(spec, args.receipt, args.keep_scratch)


def remove_pieces(stats):
    for s in stats:
        for piece in s.pieces:
            os.remove(piece.path)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--verify", choices=("changed", "always"), required=True)
    parser.add_argument("--split-logs", required=True, help='the split jobs\' logs, "{chunk}" for the chunk')
    tally.add_arguments(parser)
    parser.add_argument("--tally-log", help="rule tally_buckets' log (with --table)")
    parser.add_argument("--receipt", required=True, help="a file to create once the output is published")
    parser.add_argument(
        "--leave-to-publish", action="store_true",
        help="leave the output files under their temporary names for rule publish (the receipt says they are joined)",
    )
    parser.add_argument("--keep-scratch", action="store_true", help="leave the scratch directory (--notemp)")
    parser.add_argument("--threads", type=int, default=1, help="output files joined (or row groups encoded) at once")
    parser.add_argument("--memory-mb", type=int, required=True)
    gather(parser.parse_args(argv))


if __name__ == "__main__":
    jobs.run(main)
