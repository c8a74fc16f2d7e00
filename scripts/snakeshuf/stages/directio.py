"""Reading and writing intermediate files around the page cache (O_DIRECT).

Run files are written once and read once. Through the page cache every byte
costs the kernel a fresh page (measured here: ~3 s of CPU per GB written on a
cold machine, against ~0.2 s with O_DIRECT), and caching them evicts what is
worth caching. Where the filesystem refuses O_DIRECT (tmpfs, some network
filesystems) the same calls fall back to ordinary I/O.
"""

import mmap
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ALIGN = 4096
STAGING_BYTES = 8 << 20


def aligned_buffer(size):
    """A page-aligned uint8 array (anonymous mmap)."""
    return np.frombuffer(mmap.mmap(-1, max(ALIGN, size)), np.uint8)


def open_direct(path, flags):
    """(fd, is_direct): O_DIRECT when the filesystem allows it."""
    try:
        return os.open(path, flags | getattr(os, "O_DIRECT", 0), 0o644), hasattr(os, "O_DIRECT")
    except OSError:
        return os.open(path, flags, 0o644), False


def write_all(fd, view, path, offset=None):
    """Write all of `view` (at `offset`, else at the file position); an error
    such as a full disk names `path`."""
    done = 0
    try:
        while done < len(view):
            if offset is None:
                done += os.write(fd, view[done:])
            else:
                done += os.pwrite(fd, view[done:], offset + done)
    except OSError as error:
        raise OSError(error.errno, error.strerror, path) from None


class StagingBuffers:
    """Two aligned staging buffers: one fills while a background thread writes
    the other, so a job computes while the disk works (os.pwrite releases the
    GIL). A write's error is raised at the next swap or at finish()."""

    def __init__(self, size):
        self.buffers = [aligned_buffer(size), aligned_buffer(size)]
        self.pending = [None, None]
        self.pool = ThreadPoolExecutor(1)

    @property
    def current(self):
        return self.buffers[0]

    def write_and_swap(self, write, *args):
        """Start write(*args) (which reads the current buffer) in the background
        and make the other buffer current once its own write has finished."""
        self.pending[0] = self.pool.submit(write, *args)
        self.buffers.reverse()
        self.pending.reverse()
        self._wait(0)

    def _wait(self, which):
        if self.pending[which] is not None:
            future, self.pending[which] = self.pending[which], None
            future.result()

    def finish(self):
        """Wait for every write started; the pool stops."""
        try:
            self._wait(0)
            self._wait(1)
        finally:
            self.pool.shutdown()


class DirectWriter:
    """Sequential writer: bytes are staged in an aligned buffer and written in
    whole aligned blocks; close() pads the last block and truncates the pad."""

    def __init__(self, path):
        self.path = path
        self.fd, self.direct = open_direct(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        self.staging = StagingBuffers(STAGING_BYTES)
        self.filled = 0
        self.position = 0

    @property
    def buffer(self):
        return self.staging.current

    def write(self, data):
        data = np.frombuffer(data, np.uint8)
        done = 0
        while done < len(data):
            take = min(len(data) - done, len(self.buffer) - self.filled)
            self.buffer[self.filled : self.filled + take] = data[done : done + take]
            self.filled += take
            done += take
            if self.filled == len(self.buffer):
                self._flush(self.filled)
        self.position += len(data)

    def _flush(self, nbytes):
        self.staging.write_and_swap(write_all, self.fd, memoryview(self.buffer)[:nbytes], self.path)
        self.filled = 0

    def tell(self):
        return self.position

    def close(self):
        if self.filled:
            padded = -(-self.filled // ALIGN) * ALIGN if self.direct else self.filled
            self.buffer[self.filled : padded] = 0
            self._flush(padded)
        self.staging.finish()
        os.ftruncate(self.fd, self.position)
        os.fsync(self.fd)
        os.close(self.fd)


class DirectReader:
    """Reads byte ranges at any offset; aligned O_DIRECT reads are staged in an
    aligned buffer (`staging`, else a new one) and copied out."""

    def __init__(self, path, staging=None):
        self.path = path
        self.fd, self.direct = open_direct(path, os.O_RDONLY)
        if self.direct:
            self.buffer = aligned_buffer(STAGING_BYTES) if staging is None else staging

    def read_into(self, offset, out):
        """Fill `out` (a uint8 array) from `offset`; returns the bytes read."""
        if not self.direct:
            return os.preadv(self.fd, [out], offset)
        done = 0
        while done < len(out):
            start = offset + done
            base = start - start % ALIGN
            want = min(len(self.buffer), -(-(start + len(out) - done - base) // ALIGN) * ALIGN)
            got = os.preadv(self.fd, [self.buffer[:want]], base)
            usable = min(got - (start - base), len(out) - done)
            if usable <= 0:
                break
            out[done : done + usable] = self.buffer[start - base : start - base + usable]
            done += usable
        return done

    def close(self):
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RegionWriter:
    """Writes consecutive bytes into the region of a file that starts at
    `offset`, while other processes write the neighbouring regions: whole
    aligned blocks go through O_DIRECT, and the partial blocks at the region's
    two ends through ordinary pwrite, which changes only our bytes of a block
    that a neighbour shares."""

    def __init__(self, path, offset):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        self.direct_fd, self.direct = open_direct(path, os.O_WRONLY)
        self.staging = StagingBuffers(STAGING_BYTES)
        self.offset = offset
        self.base = offset - offset % ALIGN  # file position of buffer[0]
        self.end = offset  # file position after the last byte staged

    @property
    def buffer(self):
        return self.staging.current

    def write(self, data):
        data = np.frombuffer(data, np.uint8)
        done = 0
        while done < len(data):
            room = self.base + len(self.buffer) - self.end
            take = min(room, len(data) - done)
            at = self.end - self.base
            self.buffer[at : at + take] = data[done : done + take]
            self.end += take
            done += take
            if take == room:
                self._flush(final=False)

    def _writes(self, final):
        """(fd, lo, hi) of the staged bytes: whole blocks through O_DIRECT,
        partial end blocks through the page cache."""
        lo, hi = max(self.base, self.offset), self.end
        if not self.direct:
            return [(self.fd, lo, hi)]
        inner_lo = min(-(-lo // ALIGN) * ALIGN, hi)
        inner_hi = max(hi - hi % ALIGN if final else hi, inner_lo)
        return [(self.fd, lo, inner_lo), (self.direct_fd, inner_lo, inner_hi), (self.fd, inner_hi, hi)]

    def _write_staged(self, buffer, base, writes):
        for fd, lo, hi in writes:
            write_all(fd, memoryview(buffer)[lo - base : hi - base], self.path, lo)

    def _flush(self, final):
        self.staging.write_and_swap(self._write_staged, self.buffer, self.base, self._writes(final))
        self.base = self.end

    def close(self):
        self._flush(final=True)
        self.staging.finish()
        for fd in (self.fd, self.direct_fd):
            os.fsync(fd)
            os.close(fd)
