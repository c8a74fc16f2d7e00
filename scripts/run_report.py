"""Rule run_report: the tables and figures of a finished run that Snakemake's
report shows (snakeshuf.outputs.report). Not part of a normal run: it runs when asked,
snakemake run_report --report report.html --report-after-run.

Run with Snakemake's script: directive, like gather.
"""

from snakeshuf.errors import InputError
from snakeshuf.outputs import provenance, report
from snakeshuf.stages import jobs


def read_summary(path):
    summary = provenance.read_record(path)
    if summary is None:
        raise InputError(
            f"cannot read the run's summary '{path}': run the same command "
            "again; an output whose summary is missing is rebuilt first"
        )
    return summary


def run_report(snakemake):
    summary = read_summary(snakemake.params.summary)
    budget_mb, out = snakemake.params.memory_mb, snakemake.output
    table = report.job_table(snakemake.params.logs)
    with jobs.atomic_write(out.summary) as handle:
        handle.write(report.summary_html(summary, budget_mb).encode())
    report.plot_bucket_sizes(table, out.bucket_sizes)
    report.plot_job_memory(table, budget_mb, out.job_memory)
    report.plot_stage_throughput(summary, out.throughput)


if __name__ == "__main__":
    jobs.run_rule(run_report, snakemake)  # noqa: F821 (given by Snakemake)
