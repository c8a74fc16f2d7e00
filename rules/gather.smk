rule gather:
    input:
        inputs=[f.path for f in PLAN.files],
        plan=PLAN_FILE,
        table=BUCKET_TABLE,
        bounds=FILE_BOUNDS,
        stats=expand(STATS_PATTERN, bucket=BUCKETS),
    output:
        data=[literal(path) for path in OUTPUTS],
    log:
        log_path("gather"),
    benchmark:
        benchmark_path("gather")
    conda:
        "../envs/snakeshuf.yaml"
    threads: 1
    resources:
        mem_mb=get_mem_mb,
        runtime=runtime_for(PLAN.total_bytes),
    params:
        seed=config["seed"],
        separator=SEPARATOR,
        header_lines=HEADER_LINES,
        output=get_output_name,
        layout=LAYOUT_JSON,
        target=TARGET,
        summary=SUMMARY,
        verify=config["verify_output"],
        chunks=len(CHUNKS),
        stats_dir=get_stats_dir,
        buckets=PLAN.buckets,
        split_logs_dir=log_dir("split_chunk"),
    shell:
        f"{script_command('gather')} "
        "--target {params.target:q} --out {params.output:q} --layout {params.layout:q} --summary {params.summary:q}"
        " --seed {params.seed} --separator {params.separator} --header-lines {params.header_lines} --plan {input.plan:q}"
        " --table {input.table:q} --chunks {params.chunks}"
        " --stats-dir {params.stats_dir:q} --buckets {params.buckets}"
        " --split-logs-dir {params.split_logs_dir:q} --verify {params.verify} > {log:q} 2>&1"
