rule split_chunk:
    input:
        files=get_chunk_files,
    output:
        # Not temp(): their only consumer is split_all, and the bucket jobs read
        # them after it; the scratch directory is removed once the output is done.
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
        segments=get_chunk_segments,
        seed=config["seed"],
        buckets=PLAN.buckets,
        separator=SEPARATOR,
    shell:
        f"{script_command('split_chunk')} "
        "--segments {params.segments}"
        " --seed {params.seed} --buckets {params.buckets} --separator {params.separator}"
        " --memory-mb {resources.budget_mb} --run {output.run:q} --index {output.index:q}"
        " -- {input.files:q} > {log:q} 2>&1"


rule split_all:
    """Stands for every run file, so that each bucket job has one input edge."""
    input:
        run_files(),
    output:
        temp(RUNS_READY),
    log:
        log_path("split_all"),
    localrule: True
    conda:
        "../envs/snakeshuf.yaml"
    shell:
        "touch {output:q} > {log:q} 2>&1"
