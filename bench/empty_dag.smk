# snakeshuf's DAG with jobs that do nothing but start Python and import NumPy,
# as every snakeshuf job does: what Snakemake itself and the job starts cost a
# run of `chunks` split jobs, `tally` tally jobs (1 in a large plan, else 0)
# and `buckets` bucket jobs (bench/run_bench.py, tool "Snakemake floor").
# Snakemake's process does what snakeshuf's does to start and end quickly
# (rules/common.smk: gc.freeze, no wake-up timer left).
import gc
import os
import shlex
import sys

sys.path.insert(0, os.path.join(str(workflow.current_basedir), "..", "scripts"))

from snakeshuf.control.stopping import cancel_scheduler_wakeups

CHUNKS = range(config["chunks"])
BUCKETS = range(config["buckets"])
# Started as snakeshuf starts its jobs (rules/jobs.smk); the job touches its output.
TOUCH = "import sys, numpy; open(sys.argv[1], 'w').close()"
JOB = shlex.join(["exec", "env", "OPENBLAS_NUM_THREADS=1", sys.executable, "-c", TOUCH])


onstart:
    with open("plan.staged", "w") as handle:
        handle.write("{}")
    gc.freeze()


onsuccess:
    cancel_scheduler_wakeups()


onerror:
    cancel_scheduler_wakeups()


rule all:
    input:
        "gathered",


rule write_plan:
    """As snakeshuf's plan file: written by onstart, moved into place (rules/plan.smk)."""
    output:
        "plan",
    localrule: True
    shell:
        "mv plan.staged {output}"


rule split_chunk:
    input:
        "plan",
    output:
        "runs/{chunk}",
    shell:
        JOB + " {output}"


# As rules/tally.smk: a small plan has no tally job, and the bucket jobs and
# gather depend on every run file instead of the table.
TABLE = ["table"] if config["tally"] else expand("runs/{chunk}", chunk=CHUNKS)

if config["tally"]:

    rule tally_buckets:
        input:
            expand("runs/{chunk}", chunk=CHUNKS),
        output:
            "table",
        shell:
            JOB + " {output}"


rule shuffle_bucket:
    input:
        TABLE,
    output:
        "stats/{bucket}",
    shell:
        JOB + " {output}"


rule gather:
    input:
        TABLE,
        expand("stats/{bucket}", bucket=BUCKETS),
    output:
        "gathered",
    shell:
        JOB + " {output}"
