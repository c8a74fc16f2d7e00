rule gather:
    """Checks what every bucket job wrote, joins it into the output files and publishes them."""
    input:
        **TABLE_INPUTS,
        inputs=get_input_files,
        plan=PLAN_FILE,
        stats=expand(SCRATCH.stats(), bucket=BUCKETS),
    # What a run asks for is the receipt, missing until gather has published
    # this spec's output: an output set on disk that this spec did not make
    # is rebuilt, whatever its mtimes say; one it made is not asked for (rule
    # all). The output files are gather's own only in a module, where the
    # including workflow's rules ask for them: Snakemake deletes a job's
    # outputs when it starts it, and the old ones stay until gather replaces
    # them. Not temp(): Snakemake takes a missing temp file for one deleted
    # after use.
    output:
        **({"data": SPEC.outputs} if IN_MODULE else {}),
        receipt=RECEIPT,
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
    shell:
        f"{job_command('gather')} --plan {{input.plan:q}} --receipt {shell_word(RECEIPT)}"
        # Whether to re-read what looks unchanged; not part of the output.
        f" --verify {shell_word(config['verify_output'])}"
        # The script fills in the "{chunk}" of the split logs' pattern.
        f" --split-logs {shell_word(SPLIT_LOG)}"
        + (
            TABLE_OPTIONS + f" --tally-log {shell_word(TALLY_LOG)}"
            if TALLY_JOB
            else ""
        )
        # Gather removes the scratch directory itself once the output is
        # published: also in a module (no onsuccess) and in a run killed just after.
        + (" --keep-scratch" if workflow.storage_settings.notemp else "")
        + " > {log:q} 2>&1"
