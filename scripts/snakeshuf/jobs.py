"""What every rule script shares: atomic outputs, the job report, error exits."""

import errno
import json
import os
import resource
import sys
import time
from contextlib import contextmanager

from snakeshuf.records import InputError
from snakeshuf.directio import DirectWriter
from snakeshuf.integrity import IntegrityError

STARTED = time.monotonic()


def peak_rss_mb():
    """The kernel's high-water mark of this process's resident memory."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def atomic_write(path, direct=False):
    """Write `path` under a temporary name and rename it only on success, so a
    killed job never leaves a plausible-looking partial file. `direct` writes
    through a DirectWriter (around the page cache)."""
    partial = f"{path}.partial"
    try:
        if direct:
            writer = DirectWriter(partial)
            yield writer
            writer.close()
        else:
            with open(partial, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise


def save_json(path, value):
    with atomic_write(path) as handle:
        handle.write(json.dumps(value, indent=1).encode())


def report(stage, **stats):
    """One JSON line on stdout (the rule's log) with the job's numbers."""
    stats.update(
        stage=stage,
        seconds=round(time.monotonic() - STARTED, 3),
        peak_rss_mb=round(peak_rss_mb(), 1),
    )
    print(json.dumps(stats), flush=True)
    return stats


def disk_full_message(error):
    where = f" writing '{error.filename}'" if error.filename else ""
    return (
        f"the disk is full{where}: free space on that filesystem (or point 'scratch' "
        "elsewhere), then run the same command again"
    )


def run(main, argv=None):
    """Run a rule script's main(); known failures become one clear line and exit 1."""
    try:
        main(sys.argv[1:] if argv is None else argv)
    except (InputError, IntegrityError) as error:
        sys.exit(f"snakeshuf: error: {error}")
    except OSError as error:
        if error.errno == errno.ENOSPC:
            sys.exit(f"snakeshuf: error: {disk_full_message(error)}")
        raise
