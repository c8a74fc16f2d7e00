"""Finishing what a run leaves behind: a stale marker after a kill, and the
scratch directory after success.

gather renames the output into place as its very last step, after verifying
it and writing the summary, so an existing output is complete. But if
Snakemake is killed after that rename and before it records the job as done,
it marks the output "incomplete"; the next run (with --rerun-incomplete)
forces gather again, and Snakemake 9 then deletes gather's temp() inputs
before running it (the forced job was pruned from the DAG first), so the run
fails on missing files. When the summary proves the output complete, the
marker is dropped instead, so the same command simply finishes.

The scratch directory is removed once the output is complete: by gather,
right after publishing, and when a run finds a complete output left by one
that was killed before removing it.
"""

import os
import shutil
from base64 import urlsafe_b64encode

from snakeshuf.provenance import output_is_complete

INCOMPLETE_DIR = os.path.join(".snakemake", "incomplete")


def incomplete_markers(outputs):
    """Snakemake's markers of those of `outputs` it holds incomplete."""
    markers = [os.path.join(INCOMPLETE_DIR, urlsafe_b64encode(p.encode()).decode()) for p in outputs]
    return [m for m in markers if os.path.exists(m)]


def clear_stale_markers(outputs, summary):
    """Remove the incomplete markers of `outputs` if the output is complete;
    return whether it did."""
    markers = incomplete_markers(outputs)
    if markers and output_is_complete(outputs, summary):
        for marker in markers:
            os.remove(marker)
        return True
    return False


def remove_leftovers(scratch, outputs, summary):
    """Delete the run's scratch directory if the output is complete."""
    if os.path.isdir(scratch) and output_is_complete(outputs, summary):
        shutil.rmtree(scratch)
