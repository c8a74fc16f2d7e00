import os

from snakemake.utils import min_version

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "rules/common.smk"
include: "rules/jobs.smk"
include: "rules/resources.smk"
include: "rules/plan.smk"
include: "rules/split.smk"
include: "rules/tally.smk"
include: "rules/shuffle.smk"
include: "rules/gather.smk"


rule all:
    default_target: True
    input:
        SPEC.outputs,


onstart:
    start_run()


onsuccess:
    finish_run()
