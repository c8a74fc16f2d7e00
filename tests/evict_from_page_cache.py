"""Drop a fresh environment's shared libraries from the page cache.

Just after `pip install`, its .so files sit in the page cache as large folios,
and a process that maps them counts whole folios as resident: `import pyarrow`
measured 81 MB of VmHWM there, 53 MB once the files were read back from disk.
The memory tests compare every job's VmHWM with memory_mb, so the Makefile
runs this after installing the test environment. Usage: evict_from_page_cache.py DIR
"""

import os
import sys


def evict(root):
    for directory, _, names in os.walk(root):
        for name in names:
            if ".so" in name:
                fd = os.open(os.path.join(directory, name), os.O_RDONLY)
                try:
                    os.fsync(fd)  # dirty pages (just written) are not dropped
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


if __name__ == "__main__":
    evict(sys.argv[1])
