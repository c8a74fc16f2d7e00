"""Publishing an output set, the last step of a run: gather has joined,
checked, signed and listed its files in the summary under their temporary
names; they are renamed into place, then the scratch directory is removed and
the receipt that rule all asks for is written (rules/gather.smk).

In a module, rule publish does this after gather (the including workflow's
rules ask for the output files, and Snakemake deletes a job's outputs when it
starts it: gather's would be gone for all of its run).
"""

import os

from snakeshuf.control.resume import remove_leftovers
from snakeshuf.outputs.namespace import SUMMARY
from snakeshuf.stages.jobs import PARTIAL, release_claims


def move_into_place(spec):
    for path in spec.outputs:
        os.replace(path + PARTIAL, path)


def finish(spec, receipt, keep_scratch):
    release_claims()
    if not keep_scratch:
        remove_leftovers(spec.scratch, spec.outputs, spec.output + SUMMARY)
    open(receipt, "wb").close()
