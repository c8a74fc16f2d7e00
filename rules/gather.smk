# Gather removes the scratch directory itself once the output is published:
# also in a module (no onsuccess) and in a run killed just after.
KEEP_SCRATCH = " --keep-scratch" if workflow.storage_settings.notemp else ""


rule gather:
    """Checks what every bucket job wrote, joins it into the output files and publishes them."""
    input:
        **TABLE_INPUTS,
        inputs=get_input_files,
        plan=PLAN_FILE,
        stats=expand(SCRATCH.stats(), bucket=BUCKETS),
    # What a run asks for is the receipt, missing until this spec's output is
    # published: an output set on disk that this spec did not make is
    # rebuilt, whatever its mtimes say; one it made is not asked for (rule
    # all). The old files stay until the new ones are renamed over them:
    # Snakemake deletes a job's outputs when it starts it, so they are no
    # rule's outputs, except in a module, where the including workflow's
    # rules ask for them: there rule publish renames them, a moment's job.
    # Not temp(): Snakemake takes a missing temp file for one deleted after use.
    output:
        receipt=JOINED,
    log:
        log_path("gather"),
    benchmark:
        benchmark_path("gather")
    conda:
        "../envs/snakeshuf.yaml"
    threads: SPEC.records.gather_threads()
    resources:
        mem_mb=get_mem_mb,
        budget_mb=get_budget_mb,
        runtime=runtime_for(PLAN.total_bytes),
    shell:
        f"{job_command('gather')} --plan {{input.plan:q}} --receipt {{output.receipt:q}}"
        " --threads {threads} --memory-mb {resources.budget_mb}"
        # Whether to re-read what looks unchanged; not part of the output.
        f" --verify {shell_word(config['verify_output'])}"
        # The script fills in the "{chunk}" of the split logs' pattern.
        f" --split-logs {shell_word(SPLIT_LOG)}"
        + (
            TABLE_OPTIONS + f" --tally-log {shell_word(TALLY_LOG)}"
            if TALLY_JOB
            else ""
        )
        + KEEP_SCRATCH
        + (" --leave-to-publish" if IN_MODULE else "")
        + TO_LOG


if IN_MODULE:

    rule publish:
        """Renames the output files gather joined into place (snakeshuf.outputs.publishing)."""
        input:
            plan=PLAN_FILE,
            joined=JOINED,
        output:
            data=SPEC.outputs,
            receipt=RECEIPT,
        log:
            log_path("publish"),
        localrule: True
        conda:
            "../envs/snakeshuf.yaml"
        shell:
            f"{job_command('publish')} --plan {{input.plan:q}} --receipt {{output.receipt:q}}"
            f"{KEEP_SCRATCH}{TO_LOG}"
