"""The `snakeshuf` command's entry point (pyproject.toml; snakeshuf.control.cli does the work).

Ctrl-C while the command starts (Python and Snakemake importing, the
workflow parsing, until the workflow installs its own handler) ends it as the
signal does, with no KeyboardInterrupt traceback: the default disposition is
taken back before anything else is imported.
"""

import signal

signal.signal(signal.SIGINT, signal.SIG_DFL)


def main():
    from snakeshuf.control.cli import main as run

    return run()
