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


def output_is_complete(outputs, summary):
    """Whether the summary lists exactly `outputs`, each with the size it has."""
    try:
        with open(summary) as handle:
            recorded = json.load(handle)["outputs"]
        return list(recorded) == list(outputs) and all(os.path.getsize(p) == recorded[p] for p in outputs)
    except (OSError, ValueError, KeyError):
        return False


def clear_stale_incomplete_marker(outputs, summary):
    """Remove Snakemake's incomplete markers of `outputs` if the output is
    complete; return whether there were any."""
    markers = [os.path.join(INCOMPLETE_DIR, urlsafe_b64encode(p.encode()).decode()) for p in outputs]
    markers = [m for m in markers if os.path.exists(m)]
    if markers and output_is_complete(outputs, summary):
        for marker in markers:
            os.remove(marker)
        return True
    return False


def remove_leftovers(scratch, outputs, summary):
    """After a run that found its output already complete, delete intermediates
    that Snakemake did not (it deletes temp files only for jobs it ran)."""
    if os.path.isdir(scratch) and output_is_complete(outputs, summary):
        shutil.rmtree(scratch)
