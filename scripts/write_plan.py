"""Rule write_plan where snakeshuf is a module of another workflow: the run
spec that the main process built while parsing the workflow (snakeshuf.planning.spec),
written as the plan file that every job reads, after the checks of
snakeshuf.control.preflight (no onstart runs in a module, and this is the first job).
Elsewhere onstart writes the plan file in Snakemake's process (rules/plan.smk).

Run with Snakemake's script: directive: a `run:` block would start a whole
second Snakemake process for it.
"""

from snakeshuf.control import preflight
from snakeshuf.planning.spec import RunSpec
from snakeshuf.stages import jobs


def write_plan(snakemake):
    text, params = snakemake.params.spec, snakemake.params
    spec = RunSpec.from_json(text)
    preflight.check_places(spec)
    preflight.check(spec, params.check_disk_space, params.memory_mb)
    with jobs.atomic_write(snakemake.output[0]) as handle:
        handle.write(text.encode())


if __name__ == "__main__":
    jobs.run_rule(write_plan, snakemake)  # noqa: F821 (given by Snakemake)
