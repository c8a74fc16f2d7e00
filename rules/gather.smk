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
        keep_scratch="--keep-scratch" if workflow.storage_settings.notemp else "",
        # A function: Snakemake leaves its "{chunk}" alone (the script fills it).
        split_logs=lambda wildcards: SPLIT_LOG,
        tally_log=log_path("tally_buckets"),
    shell:
        f"{job_command('gather')} --plan {{input.plan:q}} --verify {{params.verify}}"
        " --split-logs {params.split_logs:q} --tally-log {params.tally_log:q} {params.keep_scratch}"
        " > {log:q} 2>&1"
