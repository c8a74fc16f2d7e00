rule shuffle_bucket:
    input:
        table=BUCKET_TABLE,
        bounds=FILE_BOUNDS,
    output:
        stats=temp(STATS_PATTERN),
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
    params:
        buckets=PLAN.buckets,
        chunks=len(CHUNKS),
        separator=SEPARATOR,
        target=TARGET,
        pieces=pieces_arguments(),
    shell:
        f"{script_command('shuffle_bucket')} "
        "--bucket {wildcards.bucket} --buckets {params.buckets} --separator {params.separator}"
        " --memory-mb {resources.budget_mb} --target {params.target:q} --stats {output.stats:q}"
        " --table {input.table:q} --chunks {params.chunks} {params.pieces} > {log:q} 2>&1"
