"""<output>.summary.json: what a finished run published, from what, and how
its stages ran.

Rule gather builds it from the run spec and the jobs' own reports (the JSON
line each job prints at the end of its log); snakeshuf.control.console prints a short
form of it when the run ends.
"""

import json
from collections import Counter
from dataclasses import asdict

from snakeshuf import __version__
from snakeshuf.mixing.selection import CHOSEN
from snakeshuf.outputs.layout import kept_records, record_counts

STAGES = ("split", "tally", "shuffle", "gather")


def last_report(log_path):
    """The JSON report line a job wrote at the end of its log, if any."""
    try:
        with open(log_path) as handle:
            lines = [line for line in handle if line.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except OSError:
        return None


def stage(reports):
    """A stage's jobs: how many, first start to last end, CPU time, the largest peak memory."""
    reports = [r for r in reports if r]
    if not reports:  # e.g. jobs that ran in an earlier, interrupted run
        return None
    start = min(r["finished_at"] - r["seconds"] for r in reports)
    return {
        "jobs": len(reports),
        "seconds": round(max(r["finished_at"] for r in reports) - start, 2),
        "cpu_seconds": round(sum(r["cpu_seconds"] for r in reports), 2),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in reports),
    }


def file_records(spec, records):
    """Records in each output file, in spec.outputs' order (columns share their file's count)."""
    counts = record_counts(spec.layout, kept_records(spec.take, records))
    return [count for count in counts for _ in range(spec.width)]


def source_counts(spec, split_reports, chosen):
    """Each source's records read and published (before a 'head' or
    'fraction' cut), from the split jobs' reports and the selection of
    candidates; None if a report is missing. A source of weight 0 is not read."""
    if not all(split_reports):
        return None
    read = Counter()
    for report in split_reports:
        read.update({int(source): n for source, n in report.get("source_records", {}).items()})
    duplicates, without_field = Counter(), Counter()
    for report in split_reports if spec.dedup else ():
        duplicates.update({int(source): n for source, n in report.get("duplicates", {}).items()})
        without_field.update({int(source): n for source, n in report.get("without_field", {}).items()})
    rows = []
    for i, source in enumerate(spec.sources):
        copies, n = source.copies, read[i]
        row = {"source": source.name, "weight": source.weight, "records_in": n if copies.written else None}
        if spec.dedup:
            row["duplicates"] = duplicates[i] + int(chosen.dropped[i])
            row["without_field"] = without_field[i]
            n -= row["duplicates"] + (row["without_field"] if spec.dedup.missing == "drop" else 0)
        chosen_here = int(chosen.sources[i, CHOSEN]) if copies.fraction else 0
        rows.append({**row, "records_out": copies.whole * n + chosen_here})
    return rows


def build(spec, totals, entries, reports):
    """The summary: `totals` holds records, bytes, header_bytes and key_sum;
    `entries` what identifies each output file as it is published (its
    size, inode or ETag, and token: snakeshuf.outputs.destinations);
    `reports` each stage's job reports. It is also the record of what made the output
    (snakeshuf.outputs.provenance)."""
    records = file_records(spec, totals["records"])
    return {
        "version": __version__,
        "output": spec.output,
        "outputs": {
            path: {"records": n, **entry} for path, n, entry in zip(spec.outputs, records, entries)
        },
        "fingerprint": spec.fingerprint,
        "made_by": spec.made_by,
        **totals,
        "order": {
            "seed": spec.seed,
            "separator": chr(spec.separator),
            "header_lines": spec.header_lines,
            "layout": [asdict(split) for split in spec.layout],
            "take": spec.take,
            "columns": spec.columns,
        },
        "inputs": {spec.paths.shown(f.path): f.size for f in spec.files},
        # what the next run need not read again (snakeshuf.planning.plan.recall_codecs)
        "object_codecs": {f.path: [f.version, f.codec] for f in spec.files if f.version},
        "sources": totals.pop("sources", None),
        "buckets": spec.buckets,
        "key_ranges": spec.key_ranges,
        "chunks": len(spec.chunks),
        "stages": {name: stage(reports.get(name, [])) for name in STAGES},
    }
