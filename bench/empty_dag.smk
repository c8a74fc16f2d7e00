# snakeshuf's DAG with jobs that do nothing but start Python and import NumPy,
# as every snakeshuf job does: what Snakemake itself and the job starts cost a
# run of `chunks` split jobs and `buckets` bucket jobs (bench/run_bench.py,
# tool "Snakemake floor").
import sys

CHUNKS = range(config["chunks"])
BUCKETS = range(config["buckets"])
# Started as snakeshuf starts its jobs (rules/jobs.smk); the job touches its output.
JOB = (
    f"exec env OPENBLAS_NUM_THREADS=1 {sys.executable} -c "
    "'import sys, numpy; open(sys.argv[1], \"w\").close()' {output}"
)


rule all:
    input:
        "gathered",


rule split_chunk:
    output:
        "runs/{chunk}",
    shell:
        JOB


rule tally_buckets:
    input:
        expand("runs/{chunk}", chunk=CHUNKS),
    output:
        "table",
    shell:
        JOB


rule shuffle_bucket:
    input:
        "table",
    output:
        "stats/{bucket}",
    shell:
        JOB


rule gather:
    input:
        expand("stats/{bucket}", bucket=BUCKETS),
    output:
        "gathered",
    shell:
        JOB
