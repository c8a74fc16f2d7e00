"""Preflight: will the run fit on its filesystems?

Peak use, before any intermediate is deleted: the run files (the input plus
8 bytes of key per record, estimated at PLANNED_RECORD_BYTES per record) in
scratch, and the output (written once, in place, then renamed) beside the
output. Shards, splits and compressed outputs are first written as pieces in
scratch (counted at the uncompressed size: compression is not known ahead).
What a resumed run already wrote is subtracted.
"""

import os

from snakeshuf.planning.memory import PLANNED_RECORD_BYTES


def existing_ancestor(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def already_written(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def scratch_bytes(total_bytes, pieces):
    """Peak use of scratch: the run files (records and their 8-byte keys), and
    the pieces when the output is not written in place."""
    return int(total_bytes * (1 + 8 / PLANNED_RECORD_BYTES) + (total_bytes if pieces else 0))


def peak_bytes(total_bytes, pieces):
    """Peak disk use of a run: scratch and the output."""
    return scratch_bytes(total_bytes, pieces) + total_bytes


def disk_needs(total_bytes, scratch, staged, pieces=False):
    """{filesystem id: (a path on it, bytes still needed)}; `staged`: where
    gather writes the output before it is published (beside a file, in
    scratch for an object: snakeshuf.outputs.destinations)."""
    needs = {}
    in_scratch = os.path.abspath(staged).startswith(os.path.abspath(scratch) + os.sep)  # counted with it
    wanted = {
        scratch: scratch_bytes(total_bytes, pieces) - already_written(scratch),
        staged: total_bytes - (0 if in_scratch else already_written(staged)),
    }
    for path, nbytes in wanted.items():
        anchor = existing_ancestor(os.path.dirname(os.path.abspath(path)) if path == staged else path)
        device = os.stat(anchor).st_dev
        where, before = needs.get(device, (anchor, 0))
        needs[device] = (where, before + max(0, nbytes))
    return needs


def shortfalls(total_bytes, scratch, staged, pieces=False):
    """Messages for every filesystem without room for the run."""
    problems = []
    for where, needed in disk_needs(total_bytes, scratch, staged, pieces).values():
        stats = os.statvfs(where)
        free = stats.f_bavail * stats.f_frsize
        if needed > free:
            problems.append(
                f"not enough free disk space on the filesystem of '{where}': the run needs about "
                f"{needed / 2**30:.2f} GiB more, {free / 2**30:.2f} GiB are free. Free space, move "
                "'scratch' or 'output' to a larger filesystem, or set check_disk_space: false "
                "to try anyway"
            )
    return problems


def check_writable(scratch, staged):
    for name, path in (("scratch", scratch), ("output", os.path.dirname(os.path.abspath(staged)))):
        anchor = existing_ancestor(path)
        if not os.access(anchor, os.W_OK | os.X_OK):
            return f"config key '{name}': '{anchor}' is not writable; choose a directory you can write to"
    return None
