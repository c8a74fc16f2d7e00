rule split_chunk:
    input:
        files=get_chunk_files,
        plan=PLAN_FILE,
    output:
        # Not temp(): the bucket jobs read them after tally_buckets, whose
        # table stands for them all; the scratch directory is removed once the output is done.
        run=RUN_PATTERN,
        index=INDEX_PATTERN,
    log:
        log_path("split_chunk", "{chunk}"),
    benchmark:
        benchmark_path("split_chunk", "{chunk}")
    conda:
        "../envs/snakeshuf.yaml"
    threads: 1
    resources:
        mem_mb=get_mem_mb,
        budget_mb=get_budget_mb,
        runtime=runtime_for(PLAN.chunk_bytes),
    params:
        seed=config["seed"],
        buckets=PLAN.buckets,
        separator=SEPARATOR,
        header_bytes=len(HEADER),
    shell:
        f"{script_command('split_chunk')} "
        "--plan {input.plan:q} --chunk {wildcards.chunk}"
        " --seed {params.seed} --buckets {params.buckets} --separator {params.separator}"
        " --header-bytes {params.header_bytes}"
        " --memory-mb {resources.budget_mb} --run {output.run:q} --index {output.index:q}"
        " > {log:q} 2>&1"


rule tally_buckets:
    """Reads every index once; the bucket jobs then read one row of its table."""
    input:
        run_files(),
    output:
        table=temp(BUCKET_TABLE),
        bounds=temp(FILE_BOUNDS),
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
    params:
        runs_dir=get_runs_dir,
        chunks=len(CHUNKS),
        buckets=PLAN.buckets,
        header_bytes=len(HEADER),
        layout=LAYOUT_JSON,
    shell:
        f"{script_command('tally_buckets')} "
        "--runs-dir {params.runs_dir:q} --chunks {params.chunks} --buckets {params.buckets}"
        " --memory-mb {resources.budget_mb} --header-bytes {params.header_bytes}"
        " --layout {params.layout:q} --table {output.table:q} > {log:q} 2>&1"
