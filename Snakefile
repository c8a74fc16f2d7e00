import os

from snakemake.utils import min_version

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "rules/common.smk"
include: "rules/split.smk"
include: "rules/shuffle.smk"
include: "rules/gather.smk"


rule all:
    default_target: True
    input:
        OUTPUTS,


onstart:
    print("snakeshuf plan:\n  " + "\n  ".join(plan_lines()), file=sys.stderr)
    preflight()


onsuccess:
    if all(os.path.exists(path) for path in OUTPUTS):
        print_summary()
        if not workflow.storage_settings.notemp:
            remove_leftovers(SCRATCH, OUTPUTS, SUMMARY)
