rule gather:
    input:
        inputs=[f.path for f in PLAN.files],
        indexes=index_files(),
        stats=expand(f"{SCRATCH}/buckets/{{bucket}}.json", bucket=BUCKETS),
    output:
        data=OUTPUT,
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
        target=TARGET,
        summary=SUMMARY,
        verify=config["verify_output"],
        split_logs=[log_path("split_chunk", str(chunk)) for chunk in CHUNKS],
    shell:
        f"{script_command('gather')} "
        "--target {params.target:q} --out {output.data:q} --summary {params.summary:q}"
        " --seed {params.seed} --separator {params.separator}"
        " --inputs {input.inputs:q} --indexes {input.indexes:q}"
        " --stats {input.stats:q} --split-logs {params.split_logs:q}"
        " --verify {params.verify} > {log:q} 2>&1"
