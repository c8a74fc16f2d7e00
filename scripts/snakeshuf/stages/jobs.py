"""What every rule script shares: atomic outputs, the job report, error exits."""

import errno
import fcntl
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np

from snakeshuf.control.lock import HOLDER, holder_of
from snakeshuf.errors import ConfigError, InjectedFault, InputError, IntegrityError, JobClash, OutputError
from snakeshuf.sources import objects
from snakeshuf.stages.directio import DirectWriter

# A file being written has this suffix until it is complete.
PARTIAL = ".partial"
STARTED = time.monotonic()
STARTED_CPU = time.process_time()


def peak_rss_mb():
    """The kernel's high-water mark of this program's resident memory (VmHWM).
    Not getrusage's ru_maxrss: that survives exec, so a job forked from the
    Snakemake process would report Snakemake's size."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def atomic_write(path, direct=False, durable=True):
    """Write `path` under a temporary name and rename it only on success, so a
    killed job never leaves a plausible-looking partial file. `direct` writes
    through a DirectWriter (around the page cache); a file that is not
    `durable` is not synced to disk first (one that no later run reuses)."""
    partial = path + PARTIAL
    try:
        if direct:
            writer = DirectWriter(partial)
            yield writer
            writer.close()
        else:
            with open(partial, "wb") as handle:
                yield handle
                handle.flush()
                if durable:
                    os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException as error:
        if os.path.exists(partial):
            os.remove(partial)
        if isinstance(error, OSError) and error.errno and not error.filename:  # a system call's, about this file
            raise OSError(error.errno, error.strerror, partial) from None
        raise


def save_json(path, value):
    with atomic_write(path) as handle:
        handle.write(json.dumps(value, indent=1).encode())


def report(stage, **stats):
    """One JSON line on stdout (the rule's log) with the job's numbers."""
    stats.update(
        stage=stage,
        seconds=round(time.monotonic() - STARTED, 3),
        cpu_seconds=round(time.process_time() - STARTED_CPU, 3),  # all threads
        finished_at=round(time.time(), 3),
        peak_rss_mb=round(peak_rss_mb(), 1),
    )
    print(json.dumps(stats), flush=True)
    return stats


def listed(variable, kind=int):
    return {kind(part) for part in os.environ.get(variable, "").split(",") if part.strip()}


SLOW_JOB_SECONDS = 30
_held = []  # what SNAKESHUF_EXTRA_MEMORY_MB holds until the job ends


def slow_down(release):
    """Wait SLOW_JOB_SECONDS, or until the file `release` (if any) exists."""
    deadline = time.monotonic() + SLOW_JOB_SECONDS
    while time.monotonic() < deadline and not (release and os.path.exists(release)):
        time.sleep(0.1)


def inject_faults(bucket=None, memory_mb=None):
    """Test hooks, set through the environment so that they never change what
    Snakemake sees of a job (params, config): SNAKESHUF_FAIL_BUCKETS=3,7 makes
    those shuffle jobs fail (SNAKESHUF_SLOW_JOBS: see claim);
    SNAKESHUF_OOM_BELOW_MB=N makes any job given less than N MB die the way
    the out-of-memory killer ends it (SIGKILL);
    SNAKESHUF_EXTRA_MEMORY_MB=N makes every job hold N MB more than its model
    says, like a job whose memory was underestimated, for a real OOM kill where
    memory is enforced."""
    if bucket is not None and bucket in listed("SNAKESHUF_FAIL_BUCKETS"):
        raise InjectedFault(f"bucket {bucket}: failure injected by SNAKESHUF_FAIL_BUCKETS")
    extra_mb = int(os.environ.get("SNAKESHUF_EXTRA_MEMORY_MB", 0))
    if extra_mb:
        _held.append(np.ones(extra_mb * 2**20, dtype=np.uint8))
    oom_below = int(os.environ.get("SNAKESHUF_OOM_BELOW_MB", 0))
    if memory_mb is not None and memory_mb < oom_below:
        print(f"simulated out-of-memory kill: {memory_mb} MB < SNAKESHUF_OOM_BELOW_MB", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


# A job finds its lock held by a live instance (a retry, a resubmission of a
# killed run's job still running) or by a dead host's (NFSv4 frees it when
# the host's 90-second lease ends): it waits this long for it, then stops.
CLAIM_WAIT_SECONDS = 100
NO_LOCKS = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)  # NFS without lockd, Lustre -o noflock
_claims = []


def claim(scratch, job):
    """Hold `job`'s lock in the run's Scratch `scratch` until this process
    ends (or release_claims). A second instance of the same job started while
    this one runs (a cluster's requeue, a user's rerun of its command) waits
    for it, then stops here before it writes anything, rather than writing
    the same files at once; the kernel frees a dead instance's lock (flock).
    Test hooks: SNAKESHUF_CLAIM_WAIT_SECONDS; SNAKESHUF_SLOW_JOBS=
    shuffle_bucket-0,gather makes those jobs take SLOW_JOB_SECONDS more here,
    like the jobs of a large corpus, or less, once the file SNAKESHUF_RELEASE
    names exists."""
    restarts = slurm_restarts()
    if restarts:
        raise JobClash(
            f"job {job} is a copy SLURM requeued ({restarts} restart(s), after its launch failed on a node "
            "that died); Snakemake retries its jobs itself, so this copy stopped without writing anything"
        )
    path = scratch.job_lock(job)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    wait = float(os.environ.get("SNAKESHUF_CLAIM_WAIT_SECONDS", CLAIM_WAIT_SECONDS))
    deadline = time.monotonic() + wait
    while not took_lock(fd):
        if time.monotonic() >= deadline:
            holder = holder_of(fd)
            os.close(fd)
            raise JobClash(
                f"job {job} of this run is held by {holder} (a requeued cluster job, or its command "
                f"started twice); this instance waited {wait:g} s for it and stopped without writing anything"
            )
        time.sleep(0.5)
    os.ftruncate(fd, 0)
    os.pwrite(fd, HOLDER.format(pid=os.getpid(), host=socket.gethostname()).encode(), 0)
    _claims.append(fd)
    if job in listed("SNAKESHUF_SLOW_JOBS", str):
        slow_down(os.environ.get("SNAKESHUF_RELEASE"))


def slurm_restarts():
    """How often SLURM restarted this job though it was submitted not to be
    requeued: 0 outside SLURM, where scontrol cannot say, or where the job
    asked for SLURM's requeues. profiles/slurm asks for none, but SLURM still
    requeues a job whose launch failed as its node died, and that copy may
    start after the run has given up on the job, or exited."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return 0
    try:
        shown = subprocess.run(["scontrol", "show", "job", "-o", job_id],
                               capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    restarts = re.search(r"\bRestarts=(\d+)", shown)
    # Comment=rule_...: a job the SLURM executor submitted for one rule, not
    # an allocation a whole run works in.
    submitted = re.search(r"\bRequeue=0\b", shown) and re.search(r"\bComment=rule_", shown)
    return int(restarts.group(1)) if restarts and submitted else 0


def took_lock(fd):
    """Whether this process now holds the lock of `fd`; on a filesystem that
    cannot lock files, it goes on without it and says so."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno not in NO_LOCKS:
            raise
        print(f"snakeshuf: warning: the scratch filesystem cannot lock files ({error.strerror}): "
              "a second instance of this job would not be stopped", file=sys.stderr, flush=True)
    return True


def release_claims():
    """Let go of this job's lock (before its directory is removed: NFS cannot
    remove a directory holding an open file)."""
    while _claims:
        os.close(_claims.pop())


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
    except (ConfigError, InputError, OutputError, IntegrityError, InjectedFault, JobClash) as error:
        sys.exit(f"snakeshuf: error: {error}")
    except OSError as error:
        if error.errno == errno.ENOSPC:
            sys.exit(f"snakeshuf: error: {disk_full_message(error)}")
        if objects.from_the_store(error):  # a request no reader reported (sources.reading.reported)
            sys.exit(f"snakeshuf: error: {error}")
        raise


def run_rule(main, snakemake):
    """Run main(snakemake) for a rule with Snakemake's script: directive (one
    job per run, whose file lists no command line could hold): everything it
    prints goes to the rule's log, as with the shell rules."""
    log = os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    run(lambda _: main(snakemake), [])
