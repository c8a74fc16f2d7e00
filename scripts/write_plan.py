"""Rule write_plan: the run spec that the main process built while parsing
the workflow (snakeshuf.spec), written as the plan file that every job reads.

Run with Snakemake's script: directive: a `run:` block would start a whole
second Snakemake process for it.
"""

from snakeshuf import jobs


def write_plan(snakemake):
    with jobs.atomic_write(snakemake.output[0]) as handle:
        handle.write(snakemake.params.spec.encode())


if __name__ == "__main__":
    jobs.run_rule(write_plan, snakemake)  # noqa: F821 (given by Snakemake)
