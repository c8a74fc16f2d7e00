"""Rule tally_buckets: read every split job's index once and write the bucket
table (snakeshuf.tally): each bucket's records, bytes and key checksum and
where its region of the output starts; and where each output file starts in
the one order (for shards and splits).

Run with Snakemake's script: directive (rules/tally.smk): the indexes come as
the rule's input list.
"""

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy: a job is single-threaded

import numpy as np  # noqa: E402

from snakeshuf import jobs, tally  # noqa: E402
from snakeshuf.outputs import file_bounds  # noqa: E402
from snakeshuf.spec import RunSpec  # noqa: E402


def tally_buckets(snakemake):
    spec, memory_mb = RunSpec.read(snakemake.input.plan), snakemake.resources.budget_mb
    jobs.inject_faults(memory_mb=memory_mb)
    table = tally.tally(snakemake.input.indexes, spec.buckets, spec.parts, spec.header_bytes)
    with jobs.atomic_write(snakemake.output.bounds) as handle:
        np.save(handle, file_bounds(spec.layout, tally.totals(table)["records"]))
    with jobs.atomic_write(snakemake.output.table) as handle:
        np.save(handle, table)
    jobs.report("tally", buckets=spec.buckets, chunks=len(spec.chunks), memory_mb=memory_mb, **tally.totals(table))


if __name__ == "__main__":
    jobs.run_rule(tally_buckets, snakemake)  # noqa: F821 (given by Snakemake)
