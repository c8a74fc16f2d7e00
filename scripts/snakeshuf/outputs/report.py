"""What Snakemake's report shows of a finished run (rule run_report): the
summary as tables, and figures of bucket sizes, each job's peak memory against
the budget, and each stage's throughput, from the summary and the JSON report
line each job leaves at the end of its log."""

import matplotlib

matplotlib.use("svg")  # files only, no display
matplotlib.rcParams["svg.fonttype"] = "none"  # text as text: smaller, searchable
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402

from snakeshuf.outputs.summary import last_report  # noqa: E402

MIB = 2**20
# Stages whose jobs read and write every byte of the corpus once (gather
# copies bytes only for compressed or sharded outputs).
STREAMING_STAGES = ("split", "shuffle")
STYLE = "<style>body, table {font-family: sans-serif; font-size: 14px} td, th {padding: 2px 10px}</style>"
INPUT_ROWS = 50  # a run of thousands of inputs lists the first ones
BAR_LIMIT = 200  # more buckets than this are drawn as a histogram of their sizes


def job_table(logs):
    """One row per finished job of `logs` ({stage: job log paths}): stage, job
    (chunk or bucket number), bytes, records, seconds, peak_rss_mb and
    memory_mb (the budget it was given)."""
    rows = []
    for stage, paths in logs.items():
        for path in paths:
            report = last_report(path)
            if report:
                job = report.get("bucket", report.get("chunk", 0))
                rows.append({**report, "stage": stage, "job": job})
    columns = ["stage", "job", "bytes", "records", "seconds", "peak_rss_mb", "memory_mb"]
    return pd.DataFrame(rows).reindex(columns=columns)


def stage_table(summary):
    """The summary's stages, with MB/s for those that stream the corpus."""
    stages = pd.DataFrame({name: s for name, s in summary["stages"].items() if s}).T
    stages["jobs"] = stages["jobs"].astype(int)
    streaming = stages.index.isin(STREAMING_STAGES)
    stages["MB/s"] = (summary["bytes"] / 1e6 / stages["seconds"]).where(streaming).round(1)
    return stages


def layout_text(split):
    """'train: rest in 64 shards', or 'one file' for a plain output."""
    size = "" if not split["name"] else f"{split['name']}: {split['size']}"
    shards = f" in {split['shards']} shards" if split["shards"] > 1 else ""
    return (size + shards).strip() or "one file"


def summary_html(summary, budget_mb):
    """The summary as HTML tables: the run, its output files, stages, inputs."""
    run = {
        "records": f"{summary['records']:,}",
        "bytes": f"{summary['bytes']:,}",
        "seed": summary["order"]["seed"],
        "layout": ", ".join(layout_text(split) for split in summary["order"]["layout"]),
        "chunks (split jobs)": summary["chunks"],
        "buckets (shuffle jobs)": summary["buckets"],
        "memory_mb per job": budget_mb,
        "snakeshuf version": summary["version"],
    }
    outputs = pd.DataFrame(summary["outputs"]).T[["records", "bytes"]].map("{:,}".format)
    inputs = pd.Series(summary["inputs"], name="bytes").map("{:,}".format).to_frame()
    more = len(inputs) - INPUT_ROWS
    parts = [
        ("Run", pd.Series(run, name="").to_frame()),
        ("Output files", outputs),
        ("Stages", stage_table(summary)),
        (f"Inputs ({len(inputs):,} files" + (f", the first {INPUT_ROWS})" if more > 0 else ")"), inputs.head(INPUT_ROWS)),
    ]
    return STYLE + "\n".join(f"<h3>{title}</h3>\n{table.to_html(border=0, na_rep='')}" for title, table in parts)


def plot_bucket_sizes(jobs, path):
    """A bar per bucket; past BAR_LIMIT buckets, how many buckets have each size."""
    buckets = jobs[jobs.stage == "shuffle"].sort_values("job")
    figure, axes = plt.subplots(figsize=(8, 3.5))
    if len(buckets) <= BAR_LIMIT:
        axes.bar(buckets.job, buckets.bytes / MIB, color="tab:blue")
        axes.axhline(buckets.bytes.mean() / MIB, color="black", linewidth=1, label="mean")
        axes.set(xlabel="bucket", ylabel="MiB")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        axes.hist(buckets.bytes / MIB, bins=50, color="tab:blue")
        axes.set(xlabel="MiB in a bucket", ylabel="buckets")
    axes.set_title(f"Bytes per bucket ({len(buckets):,} buckets)")
    save(figure, path)


def plot_job_memory(jobs, budget_mb, path):
    figure, axes = plt.subplots(figsize=(8, 3.5))
    for stage, rows in jobs.groupby("stage", sort=False):
        axes.scatter(rows.index, rows.peak_rss_mb, label=stage, s=12)
    axes.axhline(budget_mb, color="tab:red", linewidth=1, label=f"memory_mb = {budget_mb}")
    axes.set(xlabel="job", ylabel="peak resident memory (MB)", title="Peak memory of each job", ylim=(0, None))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    save(figure, path)


def plot_stage_throughput(summary, path):
    rates = stage_table(summary)["MB/s"].dropna()
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.bar(rates.index, rates, color="tab:green")
    axes.set(ylabel="MB/s (corpus bytes / stage wall time)", title="Throughput per stage")
    save(figure, path)


def save(figure, path):
    for axes in figure.axes:
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    figure.tight_layout()
    figure.savefig(path, metadata={"Date": None})  # the same run, the same file
    plt.close(figure)
