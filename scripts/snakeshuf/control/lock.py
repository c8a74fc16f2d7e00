"""One writer per output: the main Snakemake process holds an exclusive lock
on <output>.lock for as long as it runs.

flock(2) locks belong to the open file, so the kernel releases one when its
process dies, even by SIGKILL: a lock is never stale, and a lock file left by
a killed run is simply taken by the next. The file names the holder. It is
removed when the run ends; a process that opened the file just before that
finds that the path no longer names its file and opens it again.
"""

import fcntl
import os
import socket
import time

LOCK = ".lock"  # beside the configured output: <output>.lock
HOLDER = "snakeshuf PID {pid} on {host}"  # what a lock file says
# A holder writes its name just after it takes the lock: one found without a
# name is given this long to write it.
NAMING_SECONDS = 2
HELD_HERE = {}  # path: the OutputLock of this process that holds it (the command takes it before Snakemake)


class NotALock(Exception):
    def __init__(self, path):
        super().__init__(
            f"'{path}' exists and is not a lock snakeshuf wrote, but the run's lock goes there: "
            "move it away, or choose another output name"
        )


class OutputLock:
    def __init__(self, path):
        # Absolute: Snakemake may change the working directory before exit.
        self.path = os.path.abspath(path)
        self.fd = None

    @property
    def held(self):
        return self.fd is not None or HELD_HERE.get(self.path) not in (None, self)

    def acquire(self):
        """Take the lock; return None, or a description of who holds it
        (held by another OutputLock of this process, it is this one's too).
        A file at its name that is not a lock (someone's) is not touched: NotALock."""
        if self.held:
            return None
        if os.path.lexists(self.path) and not written_by_a_run(self.path):
            raise NotALock(self.path)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        while self.fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = holder_of(fd)
                os.close(fd)
                return holder
            if self._still_names(fd):
                os.ftruncate(fd, 0)
                os.pwrite(fd, HOLDER.format(pid=os.getpid(), host=socket.gethostname()).encode(), 0)
                self.fd = fd
                HELD_HERE[self.path] = self
            else:
                os.close(fd)
        return None

    def _still_names(self, fd):
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def release(self):
        """Remove the lock file, then let go of the lock."""
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = None
            HELD_HERE.pop(self.path, None)


def written_by_a_run(path):
    """Whether the file at `path` is a lock a run wrote (or an empty one, as a run's is at first)."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(200).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return not text or text.startswith(HOLDER.split("{")[0])


def live_holder(path):
    """Who holds the lock at `path` if a running process does, else None (tried, not taken)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return holder_of(fd)
    finally:
        os.close(fd)


def holder_of(fd):
    """Who holds the lock of the open lock file `fd`, as the holder wrote it."""
    deadline = time.monotonic() + NAMING_SECONDS
    while not (holder := os.pread(fd, 200, 0).decode(errors="replace").strip()):
        if time.monotonic() > deadline:
            return "another process"
        time.sleep(0.05)
    return holder
