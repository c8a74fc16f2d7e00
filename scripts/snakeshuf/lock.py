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


class OutputLock:
    def __init__(self, path):
        # Absolute: Snakemake may change the working directory before exit.
        self.path = os.path.abspath(path)
        self.fd = None

    @property
    def held(self):
        return self.fd is not None

    def acquire(self):
        """Take the lock; return None, or a description of who holds it."""
        while self.fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                os.close(fd)
                return holder or "another process"
            if self._still_names(fd):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"snakeshuf PID {os.getpid()} on {socket.gethostname()}".encode(), 0)
                self.fd = fd
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
