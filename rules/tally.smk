# The bucket table: in a large plan a job of its own makes it; in a small one
# each bucket job and gather make it from the indexes (snakeshuf.planning.plan.Plan.tally_job).
# A run whose weights have fractions always has the job: it chooses the extra
# copies, reading every candidate's key (snakeshuf.mixing.selection).
# So does a run that deduplicates: it counts what each key range publishes (snakeshuf.mixing.dedup).
TALLY_JOB = PLAN.tally_job or SPEC.selects or bool(SPEC.dedup)
SELECTION = {"selection": SCRATCH.selection} if SPEC.selects or SPEC.dedup else {}
TALLY_LOG = log_path("tally_buckets")
RUN_FILES_AND_INDEXES = {
    "runs": expand(SCRATCH.run(), chunk=CHUNKS),
    "indexes": expand(SCRATCH.index(), chunk=CHUNKS),
}

if TALLY_JOB:
    # What a bucket job and gather get the bucket table from, as inputs and as
    # options: the table stands for all run files, so that the DAG has one
    # edge per bucket job, not two per chunk.
    TABLE_INPUTS = {"table": SCRATCH.table, "bounds": SCRATCH.bounds, **SELECTION}
    TABLE_OPTIONS = " --table {input.table:q} --bounds {input.bounds:q}" + (
        " --selection {input.selection:q}" if SELECTION else ""
    )

    rule tally_buckets:
        """Reads every index once; the bucket jobs then read one row of its table."""
        input:
            **RUN_FILES_AND_INDEXES,
            plan=PLAN_FILE,
        output:
            **{name: temp(path) for name, path in SELECTION.items()},
            table=temp(SCRATCH.table),
            bounds=temp(SCRATCH.bounds),
        log:
            TALLY_LOG,
        benchmark:
            benchmark_path("tally_buckets")
        conda:
            "../envs/snakeshuf.yaml"
        threads: 1
        resources:
            mem_mb=get_mem_mb,
            budget_mb=get_budget_mb,
            runtime=runtime_for(PLAN.index_bytes),
        shell:
            f"{job_command('tally_buckets')} --plan {{input.plan:q}} --memory-mb {{resources.budget_mb}}"
            " --table {output.table:q} --bounds {output.bounds:q}"
            + (" --selection {output.selection:q}" if SELECTION else "")
            + TO_LOG

else:
    TABLE_INPUTS = RUN_FILES_AND_INDEXES
    TABLE_OPTIONS = ""
