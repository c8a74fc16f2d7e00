"""Finishing what a run leaves behind: Snakemake's locks and a stale marker
after a kill, and the scratch directory after success.

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

import glob
import os
import shutil
from base64 import urlsafe_b64encode

from snakeshuf.outputs.provenance import output_is_complete

INCOMPLETE_DIR = os.path.join(".snakemake", "incomplete")
LOCK_DIR = os.path.join(".snakemake", "locks")


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


def locks_of_runs_of(own):
    """Snakemake's output locks in this directory that list a file whose path
    starts with `own` (where only a run of this output writes)."""
    found = []
    for output_lock in glob.glob(os.path.join(LOCK_DIR, "*.output.lock")):
        try:
            with open(output_lock) as handle:
                listed = {line.strip() for line in handle}
        except OSError:
            continue
        if any(path.startswith(own) for path in listed):
            found.append(output_lock)
    return found


def clear_dead_runs_locks(own):
    """Remove Snakemake's locks left by a killed run of this output (see
    locks_of_runs_of). Called with the output's lock held, which a live run
    would hold: the run that left them is dead. Returns how many were removed."""
    removed = locks_of_runs_of(own)
    for output_lock in removed:
        for path in (output_lock, output_lock.replace(".output.lock", ".input.lock")):
            if os.path.exists(path):
                os.remove(path)
    return len(removed)
