rule split_chunk:
    """Reads one chunk of the inputs; writes one run file and its index."""
    input:
        files=get_chunk_files,
        plan=PLAN_FILE,
    output:
        # Not temp(): in a large plan the bucket jobs read them after
        # tally_buckets, whose table stands for them all, and Snakemake would
        # remove them after the tally; gather removes the run's scratch
        # directory once the output is complete.
        run=SCRATCH.run(),
        index=SCRATCH.index(),
    log:
        SPLIT_LOG,
    benchmark:
        benchmark_path("split_chunk", "{chunk}")
    conda:
        "../envs/snakeshuf.yaml"
    threads: 1
    resources:
        mem_mb=get_mem_mb,
        budget_mb=get_budget_mb,
        runtime=runtime_for(PLAN.chunk_bytes),
    shell:
        f"{job_command('split_chunk')} --plan {{input.plan:q}} --chunk {{wildcards.chunk}}"
        " --memory-mb {resources.budget_mb} --run {output.run:q} --index {output.index:q}"
        + TO_LOG
