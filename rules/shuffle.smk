rule shuffle_bucket:
    """Orders one bucket's records by key and writes them where they go."""
    input:
        plan=PLAN_FILE,
        # Every bucket job needs every run file: the bucket table stands for
        # them all, so that the DAG has one edge per bucket job, not two per chunk.
        table=SCRATCH.table,
        bounds=SCRATCH.bounds,
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
        " --memory-mb {resources.budget_mb} --table {input.table:q} --bounds {input.bounds:q}"
        " --stats {output.stats:q} > {log:q} 2>&1"
