"""Rule gather: check everything the bucket jobs wrote, join it into the output
files, write the summary and rename the outputs into place (the last step, so
a final name always means a complete, checked output).

A region or piece that does not match what its bucket job recorded (a damaged
or deleted file) has its bucket's stats removed, so that running the same
command again redoes exactly those buckets.

Run with Snakemake's script: directive (rules/gather.smk): the bucket jobs'
stats come as the rule's input list, which no command line could hold for
thousands of buckets.
"""

import errno
import os
import shutil

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy: a job is single-threaded

import numpy as np  # noqa: E402

from snakeshuf import buckets, codecs, jobs, keys, summary, tally  # noqa: E402
from snakeshuf.buckets import BucketStats  # noqa: E402
from snakeshuf.errors import IntegrityError  # noqa: E402
from snakeshuf.namespace import SUMMARY  # noqa: E402
from snakeshuf.records import common_header  # noqa: E402
from snakeshuf.resume import remove_leftovers  # noqa: E402
from snakeshuf.spec import RunSpec  # noqa: E402

COPY_BYTES = 4 << 20


def input_bytes(files, separator):
    """Bytes the output must have: the inputs plus a separator for each input
    whose last record lacks one. Unknown (None) if an input is compressed: the
    decompressors check those streams against their own checksums."""
    if any(f.codec is not codecs.PLAIN for f in files):
        return None
    total = 0
    for f in files:
        size = os.path.getsize(f.path)
        total += size
        if size:
            with open(f.path, "rb") as handle:
                handle.seek(size - 1)
                total += handle.read(1)[0] != separator
    return total


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


def check_stages(spec, stats, table, header):
    """Every stage accounts for the same records, bytes and key checksum."""
    stages = {
        "the split jobs": tally.totals(table),
        "the bucket jobs": {
            "records": sum(s.records for s in stats),
            "bytes": sum(s.bytes for s in stats),
            "key_sum": sum(s.key_sum for s in stats) & keys.MASK64,
        },
    }
    from_inputs = input_bytes(spec.files, spec.separator)
    if from_inputs is not None:
        stages["the inputs"] = {"bytes": from_inputs - len(header) * len(spec.files)}
    buckets.check_totals(stages)


def copy_into(out, path):
    """Append file `path` to the open file `out`, kernel-side where possible."""
    with open(path, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        done = 0
        try:
            while done < size:
                copied = os.copy_file_range(source.fileno(), out.fileno(), size - done)
                if not copied:
                    break
                done += copied
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            out.seek(0, os.SEEK_END)
            source.seek(done)
            shutil.copyfileobj(source, out, COPY_BYTES)


def finish_in_place(spec, header, total):
    """The one-file layout: the bucket jobs wrote the records in place."""
    with open(spec.target, "r+b") as handle:
        os.pwrite(handle.fileno(), header, 0)
        handle.truncate(len(header) + total)
        os.fsync(handle.fileno())
    return {spec.target: len(header) + total}


def join_pieces(spec, stats, header):
    """Each output file (under a temporary name): the header, then its pieces in bucket order."""
    by_file = [[] for _ in spec.outputs]
    for s in stats:  # in bucket order
        for piece in s.pieces:
            by_file[piece.file * spec.width + piece.column].append(piece)
    written = {}
    for path, pieces in zip(spec.outputs, by_file):
        partial = path + jobs.PARTIAL
        os.makedirs(os.path.dirname(partial) or ".", exist_ok=True)
        with open(partial, "wb") as out:
            out.write(codecs.compress(header, spec.codec))
            out.flush()
            for piece in pieces:
                copy_into(out, piece.path)
            os.fsync(out.fileno())
        written[partial] = os.path.getsize(partial)
    return written


def write_summary(spec, stats, table, written, params):
    """The summary: the totals, each output file and each stage (the split and
    tally jobs' reports are in their logs, the bucket jobs' in their stats)."""
    totals = tally.totals(table)
    reports = {
        "split": [summary.last_report(path) for path in params.split_logs],
        "tally": [summary.last_report(params.tally_log)],
        "shuffle": [s.job for s in stats],
        "gather": [jobs.report("gather", records=totals["records"], outputs=len(written))],
    }
    totals["header_bytes"] = spec.header_bytes
    jobs.save_json(spec.output + SUMMARY, summary.build(spec, totals, list(written.values()), reports))


def gather(snakemake):
    spec, inputs = RunSpec.read(snakemake.input.plan), snakemake.input
    stats = [BucketStats.load(path) for path in inputs.stats]
    header = common_header(spec.files[:1], spec.header_lines, spec.separator) if spec.header_lines else b""
    redo_damaged(spec, stats, inputs.stats, snakemake.params.verify)
    table = tally.load(inputs.table)
    buckets.check_against_table(stats, table)
    if not spec.in_place:
        buckets.check_cut(stats, np.load(inputs.bounds), spec.width)
    check_stages(spec, stats, table, header)
    total = sum(s.bytes for s in stats)
    written = finish_in_place(spec, header, total) if spec.in_place else join_pieces(spec, stats, header)
    write_summary(spec, stats, table, written, snakemake.params)
    for partial, path in zip(written, spec.outputs):
        os.replace(partial, path)
    for s in stats:
        for piece in s.pieces:
            os.remove(piece.path)
    if snakemake.params.remove_scratch:
        remove_leftovers(spec.scratch, spec.outputs, spec.output + SUMMARY)


if __name__ == "__main__":
    jobs.run_rule(gather, snakemake)  # noqa: F821 (given by Snakemake)
