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
        # Gather removes the scratch directory itself once the output is
        # published: also in a module (no onsuccess) and in a run killed just after.
        remove_scratch=not workflow.storage_settings.notemp,
        split_logs=SPLIT_LOGS,
        tally_log=log_path("tally_buckets"),
    script:
        "../scripts/gather.py"
