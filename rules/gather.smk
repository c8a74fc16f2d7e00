rule gather:
    input:
        inputs=[f.path for f in PLAN.files],
        indexes=index_files(),
        buckets=expand(f"{SCRATCH}/buckets/{{bucket}}.data", bucket=BUCKETS),
        stats=expand(f"{SCRATCH}/buckets/{{bucket}}.json", bucket=BUCKETS),
    output:
        data=OUTPUT,
        summary=SUMMARY,
    log:
        log_path("gather"),
    benchmark:
        benchmark_path("gather")
    conda:
        "../envs/snakeshuf.yaml"
    resources:
        mem_mb=get_mem_mb,
    params:
        seed=config["seed"],
        separator=SEPARATOR,
        buckets=get_bucket_pairs,
    shell:
        f"{script_command('gather')} "
        "--out {output.data:q} --summary {output.summary:q}"
        " --seed {params.seed} --separator {params.separator}"
        " --inputs {input.inputs:q} --indexes {input.indexes:q}"
        " --buckets {params.buckets:q} > {log:q} 2>&1"
