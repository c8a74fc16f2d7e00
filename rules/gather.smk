rule gather:
    """Checks what every bucket job wrote, joins it into the output files and publishes them."""
    input:
        inputs=get_input_files,
        plan=PLAN_FILE,
        table=SCRATCH.table,
        bounds=SCRATCH.bounds,
        stats=expand(SCRATCH.stats(), bucket=BUCKETS),
    output:
        data=SPEC.outputs,
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
        # Whether to re-read what looks unchanged; not part of the output.
        verify=config["verify_output"],
        # No onsuccess runs in a module: gather removes the scratch itself.
        remove_scratch=IN_MODULE and not workflow.storage_settings.notemp,
        split_logs=SPLIT_LOGS,
        tally_log=log_path("tally_buckets"),
    script:
        "../scripts/gather.py"
