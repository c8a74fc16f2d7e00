rule write_plan:
    """The run spec, as the plan file every job reads. A job of its own, so
    that nothing is written while Snakemake only parses the workflow (-n,
    --lint); the plan file's name changes with its content."""
    output:
        PLAN_FILE,
    log:
        log_path("write_plan"),
    localrule: True
    conda:
        "../envs/snakeshuf.yaml"
    params:
        spec=SPEC.to_json(),
        # snakeshuf.preflight's checks: onstart made them, but no onstart
        # runs in a module (see scripts/write_plan.py).
        preflight=IN_MODULE,
        check_disk_space=config["check_disk_space"],
    script:
        "../scripts/write_plan.py"
