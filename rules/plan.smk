# The run spec, as the plan file every job reads: a job of its own, so that
# nothing is written while Snakemake only parses the workflow (-n, --lint);
# the plan file's name changes with its content.
if IN_MODULE:

    rule write_plan:
        """Where snakeshuf is a module, no onstart runs: this first job also
        makes snakeshuf.preflight's checks (scripts/write_plan.py)."""
        output:
            PLAN_FILE,
        log:
            log_path("write_plan"),
        localrule: True
        conda:
            "../envs/snakeshuf.yaml"
        params:
            spec=SPEC.to_json(),
            check_disk_space=config["check_disk_space"],
        script:
            "../scripts/write_plan.py"

else:

    rule write_plan:
        """Snakemake renders the plan file in its own process: no job start
        (onstart made the checks)."""
        input:
            template=os.path.join(SNAKESHUF_DIR, "rules", "plan.json.jinja2"),
        output:
            PLAN_FILE,
        log:
            log_path("write_plan"),
        localrule: True
        params:
            spec=SPEC.to_json(),
        template_engine:
            "jinja2"
