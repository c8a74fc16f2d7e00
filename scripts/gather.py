"""Rule gather: verify the output the bucket jobs wrote in place, check the
totals of every stage against each other and the inputs, write the summary and
rename the output into place (the last step, so a final name always means a
complete, verified output).

A region that does not match what its bucket job recorded (a damaged or
deleted target file) has its bucket's stats removed, so that running the same
command again redoes exactly those buckets.

Usage (from rules/gather.smk):
  gather.py --target TARGET --out OUTPUT --summary JSON --seed S [--separator BYTE] [--header-lines N]
            --plan PLAN --table TABLE --chunks N --stats-dir DIR --buckets N
"""

import argparse
import errno
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from itertools import accumulate

import numpy as np

from snakeshuf import codecs, jobs, keys, layout, parts, tally
from snakeshuf.directio import DirectReader
from snakeshuf.integrity import IntegrityError, checksum
from snakeshuf.plan import read_plan_file
from snakeshuf.records import common_header

READ_BYTES = 4 << 20
VERIFY_THREADS = 2


def region_checksum(reader, offset, size, buffer):
    """The checksum of bytes [offset, offset + size) of a file."""
    running = done = 0
    while done < size:
        got = reader.read_into(offset + done, buffer[: min(len(buffer), size - done)])
        if not got:
            break
        running = checksum(memoryview(buffer)[:got], running)
        done += got
    return running if done == size else None


def region_matches(target, stats):
    buffer = np.empty(READ_BYTES, np.uint8)
    with DirectReader(target, READ_BYTES) as reader:
        return region_checksum(reader, stats["offset"], stats["bytes"], buffer) == stats["checksum"]


def damaged_buckets(target, stats):
    """Stats of the buckets whose region of `target` is missing or altered.
    Regions are read by a few threads at once: the reads wait on the disk."""
    if not os.path.exists(target):
        return stats
    with ThreadPoolExecutor(VERIFY_THREADS) as pool:
        matches = list(pool.map(lambda s: region_matches(target, s), stats))
    return [s for s, ok in zip(stats, matches) if not ok]


def last_report(log_path):
    """The JSON report line a job wrote at the end of its log, if any."""
    try:
        with open(log_path) as handle:
            lines = [line for line in handle if line.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except OSError:
        return None


def stage_wall_seconds(reports):
    """First job start to last job end, from the jobs' own reports."""
    reports = [r for r in reports if r]
    if not reports:
        return None
    start = min(r["finished_at"] - r["seconds"] for r in reports)
    return round(max(r["finished_at"] for r in reports) - start, 2)


def load_json(path):
    with open(path) as handle:
        return json.load(handle)


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


def check_totals(stage_totals):
    """Every stage must account for the same records, bytes and key checksum."""
    (first_name, first), *rest = stage_totals.items()
    for name, totals in rest:
        for field in first.keys() & totals.keys():
            if first[field] != totals[field]:
                raise IntegrityError(
                    f"{field} differ between {first_name} ({first[field]}) and {name} "
                    f"({totals[field]}): records were lost or duplicated; the output was not written"
                )


def untouched_since_written(target, stats):
    """Whether nothing wrote to `target` after the last bucket job finished: each
    bucket job records the file's mtime after its own last write, so the
    largest of them is the file's mtime unless something changed it later."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return False
    return info.st_mtime_ns <= max(s["target_mtime_ns"] for s in stats) and info.st_size >= max(
        s["output_bytes"] for s in stats
    )


def file_checksum(path, size):
    buffer = np.empty(READ_BYTES, np.uint8)
    with DirectReader(path, READ_BYTES) as reader:
        return region_checksum(reader, 0, size, buffer)


def piece_intact(piece, verify):
    """A piece file is as its bucket job wrote it: same size, and the same mtime
    (verify 'changed') or the same checksum."""
    try:
        info = os.stat(piece["path"])
    except FileNotFoundError:
        return False
    if info.st_size != piece["file_bytes"]:
        return False
    if verify == "changed" and info.st_mtime_ns == piece["mtime_ns"]:
        return True
    return file_checksum(piece["path"], info.st_size) == piece["file_checksum"]


def damaged_output(target, stats, verify):
    """Stats of the buckets whose output (region or pieces) is missing or altered,
    and what that output is called."""
    if "pieces" in stats[0]:
        return [s for s in stats if not all(piece_intact(p, verify) for p in s["pieces"])], "piece files"
    if verify == "changed" and untouched_since_written(target, stats):
        return [], ""
    return damaged_buckets(target, stats), f"region(s) of '{target}'"


def redo_damaged(target, stats_paths, stats, verify):
    bad, what = damaged_output(target, stats, verify)
    damaged = [path for path, s in zip(stats_paths, stats) if s in bad]
    for path in damaged:
        os.remove(path)
    if damaged:
        raise IntegrityError(
            f"{len(damaged)} bucket {what} are missing or do not match what "
            "their bucket jobs recorded (the file was changed or removed); their records were "
            "not published. Run the same command again: it redoes exactly those buckets."
        )


def check_against_table(stats, table):
    """Every bucket job wrote what the split jobs put in its bucket, where the
    bucket table placed it."""
    for bucket, s in enumerate(stats):
        row = table[bucket]
        recorded = (s["bucket"], s["records"], s["bytes"], s["key_sum"], s.get("offset", int(row[tally.OFFSET])))
        planned = (bucket, *(int(row[c]) for c in (tally.RECORDS, tally.BYTES, tally.KEY_SUM, tally.OFFSET)))
        if recorded != planned:
            raise IntegrityError(
                f"bucket {bucket}: its job recorded (bucket, records, bytes, key checksum, offset) "
                f"{recorded} but the bucket table says {planned}; run the same command again"
            )


def check_cut(stats, bounds, columns):
    """Each output file (and column) is made of pieces that start at its first
    record, follow each other in bucket order without a gap or an overlap, and
    end where the next file begins."""
    by_file = {}
    for piece in sorted((p for s in stats for p in s["pieces"]), key=lambda p: p["bucket"]):
        by_file.setdefault((piece["part"], piece["column"]), []).append(piece)
    for part in range(len(bounds) - 1):
        for column in range(columns):
            pieces = by_file.get((part, column), [])
            ends = list(accumulate((p["records"] for p in pieces), initial=int(bounds[part])))
            if [p["first_record"] for p in pieces] != ends[:-1] or ends[-1] != int(bounds[part + 1]):
                raise IntegrityError(
                    f"output file {part} (column {column}): its pieces do not hold exactly records "
                    f"{int(bounds[part]):,} to {int(bounds[part + 1]):,} of the shuffled order; "
                    "nothing was published"
                )


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
            shutil.copyfileobj(source, out, READ_BYTES)


def write_single(target, header, total):
    """The one-file layout: the bucket jobs wrote the records in place."""
    with open(target, "r+b") as handle:
        os.pwrite(handle.fileno(), header, 0)
        handle.truncate(len(header) + total)
        os.fsync(handle.fileno())
    return {target: len(header) + total}


def write_parts(outputs, columns, stats, header, codec):
    """Each output file (under a temporary name): the header, then its pieces in bucket order."""
    by_file = [[] for _ in outputs]
    for piece in sorted((p for s in stats for p in s["pieces"]), key=lambda p: (p["part"], p["column"], p["bucket"])):
        by_file[piece["part"] * columns + piece["column"]].append(piece)
    written = {}
    for path, file_pieces in zip(outputs, by_file):
        partial = path + ".partial"
        os.makedirs(os.path.dirname(partial) or ".", exist_ok=True)
        with open(partial, "wb") as out:
            out.write(parts.compress(header, codec) if codec else header)
            out.flush()
            for piece in file_pieces:
                copy_into(out, piece["path"])
            os.fsync(out.fileno())
        written[partial] = os.path.getsize(partial)
    return written


def gather(target, out_path, layout, summary_path, seed, separator, header_lines, plan, table_path, stats_paths, split_logs, verify):
    files, _, width = plan
    stats = [load_json(path) for path in stats_paths]
    total = sum(s["bytes"] for s in stats)
    header = common_header(files[:1], header_lines, separator) if header_lines else b""
    redo_damaged(target, stats_paths, stats, verify)
    table = tally.load(table_path)
    check_against_table(stats, table)
    if "pieces" in stats[0]:
        check_cut(stats, tally.load_bounds(table_path), width)
    split = tally.totals(table)
    stages = {
        "the split jobs": split,
        "the bucket jobs": {
            "records": sum(s["records"] for s in stats),
            "bytes": total,
            "key_sum": sum(s["key_sum"] for s in stats) & keys.MASK64,
        },
    }
    from_inputs = input_bytes(files, separator)
    if from_inputs is not None:
        stages["the inputs"] = {"bytes": from_inputs - len(header) * len(files)}
    check_totals(stages)
    columns = parts.column_names([f.path for f in files[:width]]) if width > 1 else None
    outputs = parts.output_paths(out_path, parts.layout_from_spec(layout), columns)
    if "pieces" in stats[0]:
        written = write_parts(outputs, width, stats, header, parts.output_codec(out_path))
    else:
        written = write_single(target, header, total)
    stage_seconds = {
        "split": stage_wall_seconds([last_report(path) for path in split_logs]),
        "shuffle": stage_wall_seconds(stats),
    }
    summary = jobs.report(
        "gather", output=out_path, outputs={path: size for path, size in zip(outputs, written.values())},
        records=split["records"], bytes=total, header_bytes=len(header), seed=seed,
        buckets=len(stats), chunks=len(split_logs), inputs=len(files), key_sum=split["key_sum"],
        stage_seconds=stage_seconds,
    )
    summary["stage_seconds"]["gather"] = summary["seconds"]
    jobs.save_json(summary_path, summary)
    for partial, path in zip(written, outputs):
        os.replace(partial, path)
    for s in stats:
        for piece in s.get("pieces", ()):
            os.remove(piece["path"])


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--layout", type=json.loads, default=[["", "rest", 1]], help="the output files (parts.layout_spec)")
    parser.add_argument("--summary", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--separator", type=int, default=ord("\n"))
    parser.add_argument("--plan", required=True, help="the plan file")
    parser.add_argument("--header-lines", type=int, default=0)
    parser.add_argument("--table", required=True, help="the bucket table (rule tally_buckets)")
    parser.add_argument("--chunks", type=int, required=True)
    parser.add_argument("--stats-dir", required=True, help="the bucket jobs' statistics")
    parser.add_argument("--buckets", type=int, required=True)
    parser.add_argument("--split-logs-dir", required=True)
    parser.add_argument("--verify", choices=("always", "changed"), default="always")
    args = parser.parse_args(argv)
    gather(
        args.target, args.out, args.layout, args.summary, args.seed, args.separator, args.header_lines, read_plan_file(args.plan),
        args.table,
        layout.stats_files(args.stats_dir, args.buckets),
        layout.log_files(args.split_logs_dir, args.chunks),
        args.verify,
    )


if __name__ == "__main__":
    jobs.run(main)
