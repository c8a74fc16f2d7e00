# The run spec, as the plan file every job reads: a job of its own, so that
# nothing is written while Snakemake only parses the workflow (-n, --lint);
# the plan file's name changes with its content.
if IN_MODULE:

    rule write_plan:
        """Where snakeshuf is a module, no onstart runs: this first job also
        makes snakeshuf.control.preflight's checks (scripts/write_plan.py)."""
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
            memory_mb=config["memory_mb"],
        script:
            "../scripts/write_plan.py"

else:

    rule write_plan:
        """onstart wrote the plan file (start_run): in Snakemake's process, with
        no job start, and nothing written on -n. Not a template rule: its job
        object makes Snakemake import pandas (0.2-0.3 s)."""
        output:
            PLAN_FILE,
        log:
            log_path("write_plan"),
        localrule: True
        conda:
            "../envs/snakeshuf.yaml"
        shell:
            f"if [ ! -e {shell_word(STAGED_PLAN)} ]; then echo 'snakeshuf: error: onstart"
            " writes the plan file, and --no-hooks skips it (and the checks before the"
            " first job): run without --no-hooks' >&2; exit 1; fi;"
            f" mv {shell_word(STAGED_PLAN)} {{output:q}} 2> {{log:q}}"
