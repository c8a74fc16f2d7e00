rule write_plan:
    """The run spec, as the plan file every job reads. A job of its own, so
    that nothing is written while Snakemake only parses the workflow (-n,
    --lint); the plan file's name changes with its content."""
    output:
        PLAN_FILE,
    params:
        spec=SPEC.to_json(),
    log:
        log_path("write_plan"),
    conda:
        "../envs/snakeshuf.yaml"
    localrule: True
    script:
        "../scripts/write_plan.py"
