"""What the main process tells the person who started the run: the plan
before any job, the result after the last, and why it stops."""

import sys

from snakeshuf.control.disk import peak_bytes
from snakeshuf.outputs.provenance import SUMMARY
from snakeshuf.records import codecs
from snakeshuf.sources import pipes

MIB = 2**20


# The exit status of a run refused before any job (argparse's for usage errors);
# a run that fails in a job exits 1.
REFUSED = 2


def fail(error):
    """Stop before any job runs, with the message alone (no traceback)."""
    print(f"snakeshuf: error: {pipes.named_in(str(error))}", file=sys.stderr)
    sys.exit(REFUSED)


def print_failure_hint(output, signal_name, published):
    """After a failed or stopped run (Snakemake has printed a failed job's log)."""
    if published:
        how = f"was stopped by {signal_name}" if signal_name else "failed"
        text = f"the run {how} after publishing '{output}', which is complete."
    elif signal_name:
        text = (
            f"stopped by {signal_name} before publishing '{output}'. Run the same command "
            "again to go on: only unfinished jobs are redone, and the output is the same."
        )
    else:
        text = (
            f"the run stopped before publishing '{output}'; the failed job's log is above. "
            "Fix what it names, if anything, then run the same command again: only what "
            "failed is redone, and the output is the same."
        )
    print(f"snakeshuf: {text}", file=sys.stderr)


def output_description(outputs):
    if len(outputs) == 1:
        return outputs[0]
    return f"{len(outputs)} files, {outputs[0]} ... {outputs[-1]}"


def plan_lines(spec, plan, sheet):
    """The plan, in a few lines: what is read, how it is cut, what it costs."""
    compressed = sum(f.codec is not codecs.PLAIN for f in spec.files)
    total = plan.total_bytes
    return [
        f"inputs:   {len(spec.files)} file(s)"
        + (f" ({compressed} compressed: size estimated)" if compressed else "")
        + f", {total / MIB:,.1f} MiB"
        + (f", listed in {sheet} ('inputs' not used)" if sheet else ""),
        f"chunks:   {len(spec.chunks)} split job(s) of up to {plan.chunk_bytes / MIB:,.0f} MiB",
        f"buckets:  {spec.buckets} shuffle job(s) of ~{total / spec.buckets / MIB:,.1f} MiB",
        f"memory:   {plan.memory.memory_mb} MB per job (longest record {spec.records.longest_record(plan.memory) / MIB:,.0f} MiB)",
        f"scratch:  {spec.scratch}",
        f"disk:     ~{peak_bytes(total, not spec.in_place) / 2**30:,.2f} GiB at peak "
        + ("(run files + output)" if spec.in_place else "(run files + pieces + output files)"),
        f"output:   {output_description(spec.outputs)} (seed {spec.seed})",
    ]


def print_plan(spec, plan, sheet):
    print("snakeshuf plan:\n  " + "\n  ".join(plan_lines(spec, plan, sheet)), file=sys.stderr)


def note(text):
    print(f"snakeshuf: {text}", file=sys.stderr)


def print_verdict(output, verdict):
    """One line on the output already on disk: kept, or why it is rebuilt."""
    if verdict.current:
        print(f"snakeshuf: '{output}' is up to date: this run's inputs, seed and settings made it", file=sys.stderr)
    elif verdict.why:
        print(f"snakeshuf: '{output}' is rebuilt: {verdict.why}", file=sys.stderr)


def counted_records(summary, spec):
    """'1,000 records, 52,000 bytes', '10 of 1,000 records', '3 of 16 records
    (from 8 read: weights, dedup)', ... (a 'head' run's split jobs pass on
    only the records that may be among the first: the records read count)."""
    published = sum(entry["records"] for entry in summary["outputs"].values()) // spec.width
    read = summary.get("input_records", summary["records"])
    mixing = spec.dedup or any(source.weight != 1 for source in spec.sources)
    ordered = summary["records"] if mixing else read
    counted = f"{published:,} of {ordered:,} records" if published != ordered else f"{published:,} records"
    if ordered != read:
        return counted + f" (from {read:,} read: weights, dedup)"
    return counted + (f", {summary['bytes']:,} bytes" if published == ordered else "")


def print_summary(spec, summary):
    """The result of a run, from its summary (the record gather wrote)."""
    stages = ", ".join(
        f"{name} {s['seconds']} s, peak {s['peak_rss_mb']} MB"
        for name, s in summary["stages"].items()
        if s
    )
    print(
        f"snakeshuf: {counted_records(summary, spec)} "
        f"-> {output_description(spec.outputs)} (seed {summary['order']['seed']}, {summary['buckets']} buckets)\n"
        f"snakeshuf: per stage: {stages}; summary: {spec.output}{SUMMARY}",
        file=sys.stderr,
    )
