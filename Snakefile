import os

from snakemake.utils import min_version

min_version("9.0")


# snakeshuf's own directory, also where another workflow uses it as a module
# (workflow.basedir is then that workflow's).
SNAKESHUF_DIR = str(workflow.current_basedir)
# Snakemake runs no onstart or onsuccess of a module, and a module's
# default target would replace the including workflow's.
IN_MODULE = not workflow.modifier.is_main_snakefile()


configfile: os.path.join(SNAKESHUF_DIR, "config", "config.yaml")


include: "rules/common.smk"
include: "rules/jobs.smk"
include: "rules/resources.smk"
include: "rules/plan.smk"
include: "rules/split.smk"
include: "rules/tally.smk"
include: "rules/shuffle.smk"
include: "rules/gather.smk"
include: "rules/report.smk"


rule all:
    default_target: not IN_MODULE
    input:
        # An output set this spec made is kept, whatever Snakemake's records
        # say; any other is rebuilt: gather's receipt is missing (rules/gather.smk).
        [] if VERDICT.current else RECEIPT,


onstart:
    start_run()


onsuccess:
    finish_run()


onerror:
    report_failure()
