rule tally_buckets:
    """Reads every index once; the bucket jobs then read one row of its table."""
    input:
        plan=PLAN_FILE,
        runs=expand(SCRATCH.run(), chunk=CHUNKS),
        indexes=expand(SCRATCH.index(), chunk=CHUNKS),
    output:
        table=temp(SCRATCH.table),
        bounds=temp(SCRATCH.bounds),
    log:
        log_path("tally_buckets"),
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
        " --table {output.table:q} --bounds {output.bounds:q} > {log:q} 2>&1"
