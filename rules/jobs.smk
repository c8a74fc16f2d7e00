# How each job runs: its command line, log file and benchmark file (and the
# report's files).
import shlex

if not IN_MODULE:  # the prefix is every rule's, also an including workflow's
    # Ctrl-C reaches every process in the terminal's foreground group: jobs
    # ignore it (no traceback), the main process stops them (snakeshuf.control.stopping).
    shell.prefix("set -euo pipefail; trap '' INT; ")


def python_for_jobs():
    """The interpreter running Snakemake has snakeshuf's packages; with
    --software-deployment-method conda, the rule's environment's python does."""
    methods = getattr(workflow.deployment_settings, "deployment_method", ())
    return (
        "python" if any("conda" in str(m).lower() for m in methods) else sys.executable
    )


# Where a job's output goes. Appended, not truncated: Snakemake removes a
# job's log before it runs it, and a second instance of a running job (its
# command started again) must not cut the first one's report out of it.
TO_LOG = " >> {log:q} 2>&1"


def job_command(name):
    """Shell words that run scripts/<name>.py, as a literal shell-rule prefix.
    `exec` leaves no shell behind to count against the memory budget; jobs are
    single-threaded, and OpenBLAS's idle thread pool only costs memory."""
    words = ["exec", "env", "OPENBLAS_NUM_THREADS=1", python_for_jobs()]
    words.append(os.path.join(SNAKESHUF_DIR, "scripts", f"{name}.py"))
    return shlex.join(words)


# Rules put their values in their commands, not in params: Snakemake imports
# pandas (0.3 s) to record the params of each finished job that has some.
def shell_word(value):
    """`value` as one word of a shell rule's command, which Snakemake formats."""
    return shlex.quote(value).replace("{", "{{").replace("}", "}}")


def log_path(rule_name, wildcard=""):
    """A log's pattern: `wildcard` is e.g. "{bucket}" (the rule's own name if none)."""
    return os.path.join("logs", RUN_NAME, rule_name, f"{wildcard or rule_name}.log")


def benchmark_path(rule_name, wildcard=""):
    return os.path.join(
        "benchmarks", RUN_NAME, rule_name, f"{wildcard or rule_name}.tsv"
    )


# Where the split jobs' reports are: for gather's summary and the progress lines.
SPLIT_LOG = log_path("split_chunk", "{chunk}")
SPLIT_LOGS = expand(SPLIT_LOG, chunk=CHUNKS)


def job_logs(wildcards):
    """This plan's job logs by stage (an earlier plan's may lie beside them).
    A function, so that thousands of bucket logs cost nothing at parse."""
    return {
        "split": SPLIT_LOGS,
        "tally": [TALLY_LOG] if TALLY_JOB else [],
        "shuffle": expand(log_path("shuffle_bucket", "{bucket}"), bucket=BUCKETS),
        "gather": [log_path("gather")],
    }


def report_file(name, caption):
    """A file of rule run_report, shown in Snakemake's report with report/<caption>.rst."""
    return report(
        os.path.join("reports", RUN_NAME, name),
        caption=f"../report/{caption}.rst",
        category="Run",
        labels={"figure": caption.replace("_", " ")},
    )
