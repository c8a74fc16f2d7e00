"""Progress while a run goes, in bytes: a line in a long job's log, and a line
from the main process with the whole run's share done and the time left.

The main process (the Snakefile's onstart) starts a thread that looks at what
finished jobs left: each split job's index file (its chunk's bytes, from the
spec) and each bucket job's stats file. Every input byte is handled twice, by
a split job and by a bucket job, so the run is done when both have seen them all.
"""

import os
import sys
import threading
import time
from collections import deque

from snakeshuf.stages.buckets import BucketStats

# SNAKESHUF_PROGRESS_SECONDS: how often a line is printed. Tests set 0: a job
# then prints at every step, and the run's line comes POLL_SECONDS apart.
INTERVAL_SECONDS = float(os.environ.get("SNAKESHUF_PROGRESS_SECONDS", 5))
POLL_SECONDS = 0.05
# The time left comes from the speed over the last lines of the same stage
# (a bucket job takes longer per byte than a split job).
RATE_WINDOW = 6


class JobProgress:
    """A line in the job's log at most every INTERVAL_SECONDS."""

    def __init__(self, what, total_bytes):
        self.what, self.total, self.last = what, total_bytes, time.monotonic()

    def update(self, done_bytes):
        now = time.monotonic()
        if now - self.last >= INTERVAL_SECONDS:
            self.last = now
            share = 100 * done_bytes / self.total if self.total else 100
            print(f"progress: {self.what}: {mib(done_bytes)} of {mib(self.total)} ({share:.0f}%)", flush=True)


def mib(nbytes):
    return f"{nbytes / 2**20:,.1f} MiB"


def bytes_done(spec):
    """(split, shuffle): the bytes of the chunks indexed and of the buckets written."""
    paths = spec.paths
    split = sum(spec.chunk_bytes(c) for c in range(len(spec.chunks)) if os.path.exists(paths.index(c)))
    shuffle = 0
    for bucket in range(spec.buckets):
        try:
            shuffle += BucketStats.load(paths.stats(bucket)).bytes
        except (OSError, ValueError, KeyError, TypeError):  # not written yet; damaged: gather says so
            pass
    return split, shuffle


def describe(split, shuffle, total, rate):
    """One line: the share done, each stage's, and the time left at `rate` bytes/s.
    A stage's share stops at 100 %: the total of a compressed or Parquet input
    is an estimate, which its records may well exceed."""
    split, shuffle = min(split, total), min(shuffle, total)
    done, whole = split + shuffle, 2 * total
    line = (
        f"snakeshuf: progress {100 * done / whole:.0f}% of {mib(total)} "
        f"(split {100 * split / total:.0f}%, shuffle {100 * shuffle / total:.0f}%)"
    )
    if rate > 0 and done < whole:
        line += f", about {(whole - done) / rate:,.0f} s left"
    return line


def add_sample(seen, sample, total):
    """Add a (time, split, shuffle) sample; the end of the split stage starts a new window."""
    if sample[1] == total > seen[-1][1]:
        seen.clear()
    seen.append(sample)


def rate(seen):
    """Bytes per second over the (time, split, shuffle) samples `seen`."""
    (then, *done_then), (now, *done_now) = seen[0], seen[-1]
    return (sum(done_now) - sum(done_then)) / (now - then) if now > then else 0


def sample_unless_published(spec):
    """(time, split, shuffle) now, or None once the outputs exist.

    The outputs are looked for after the files are counted: Snakemake removes
    the scratch files only once gather has published, so a count taken while
    they went (which would read as 0 %) is always followed by finding the outputs.
    """
    sample = (time.monotonic(), *bytes_done(spec))
    return None if spec.destination.looks_published(spec) else sample


def watch(spec):
    """Print the progress line every INTERVAL_SECONDS until the outputs exist."""
    total = sum(spec.chunk_bytes(c) for c in range(len(spec.chunks)))
    if not total:
        return

    def loop():
        seen = deque([(time.monotonic(), *bytes_done(spec))], maxlen=RATE_WINDOW + 1)
        while True:
            time.sleep(max(INTERVAL_SECONDS, POLL_SECONDS))
            sample = sample_unless_published(spec)
            if sample is None:
                return
            add_sample(seen, sample, total)
            print(describe(*sample[1:], total, rate(seen)), file=sys.stderr, flush=True)

    threading.Thread(target=loop, name="snakeshuf-progress", daemon=True).start()
