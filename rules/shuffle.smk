rule shuffle_bucket:
    """Orders one bucket's records by key and writes them where they go."""
    input:
        **TABLE_INPUTS,
        plan=PLAN_FILE,
    output:
        stats=temp(SCRATCH.stats()),
    log:
        log_path("shuffle_bucket", "{bucket}"),
    benchmark:
        benchmark_path("shuffle_bucket", "{bucket}")
    conda:
        "../envs/snakeshuf.yaml"
    threads: 1
    resources:
        mem_mb=get_mem_mb,
        budget_mb=get_budget_mb,
        runtime=runtime_for(PLAN.total_bytes / PLAN.buckets),
    shell:
        f"{job_command('shuffle_bucket')} --plan {{input.plan:q}} --bucket {{wildcards.bucket}}"
        f" --memory-mb {{resources.budget_mb}}{TABLE_OPTIONS} --stats {{output.stats:q}}"
        + TO_LOG
