"""Resuming after Snakemake itself was killed.

gather renames the output into place as its very last step, after verifying
it and writing the summary, so an existing output is complete. But if
Snakemake is killed after that rename and before it records the job as done,
it marks the output "incomplete"; the next run (with --rerun-incomplete)
forces gather again, and Snakemake 9 then deletes gather's temp() inputs
before running it (the forced job was pruned from the DAG first), so the run
fails on missing files. When the summary proves the output complete, we drop
that stale marker instead, so the same command simply finishes.
"""

import json
import os
import shutil
from base64 import urlsafe_b64encode

INCOMPLETE_DIR = os.path.join(".snakemake", "incomplete")


def output_is_complete(output, summary):
    try:
        with open(summary) as handle:
            recorded = json.load(handle)
        return recorded["output"] == output and os.path.getsize(output) == recorded["bytes"]
    except (OSError, ValueError, KeyError):
        return False


def clear_stale_incomplete_marker(output, summary):
    """Remove Snakemake's incomplete marker of `output` if the output is
    complete; return whether it did."""
    marker = os.path.join(INCOMPLETE_DIR, urlsafe_b64encode(output.encode()).decode())
    if os.path.exists(marker) and output_is_complete(output, summary):
        os.remove(marker)
        return True
    return False


def remove_leftovers(scratch, output, summary):
    """After a run that found its output already complete, delete intermediates
    that Snakemake did not (it deletes temp files only for jobs it ran)."""
    if os.path.isdir(scratch) and output_is_complete(output, summary):
        shutil.rmtree(scratch)
