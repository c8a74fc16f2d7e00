"""Stopping a run within seconds on SIGTERM or Ctrl-C, in a state that the
same command resumes.

Snakemake 9.27.1's own SIGTERM handler takes the scheduler's lock, which the
interrupted code may already hold (the run then hangs), and even when it does
not, the run waits for its running jobs to finish; before the scheduler
exists, SIGTERM kills Snakemake outright and leaves its locks behind. This
handler takes no lock: it stops the run's job processes and interrupts the
scheduler, which cancels what is left (remote jobs included) and ends the run
as failed; before that, it ends the run at once, unwinding Snakemake's locks.
"""

import asyncio
import os
import signal
import sys
import threading
import time

import psutil

SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOPPED = 1  # the exit status of a stopped run, as of a failed one: run it again
# How often the run's job processes are stopped again once stopping: a job
# the scheduler handed to a thread just before the signal starts a moment later.
REPEAT_SECONDS = 0.1
# A signal that lands where an interrupt would be taken for an error is sent
# again after this long.
REDELIVER_SECONDS = 0.02


def runs_inside(frame, code):
    """Whether `frame` or any frame below it runs `code`."""
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def stop_descendants():
    """SIGTERM every process this one started: jobs, the scheduler's solver."""
    for process in psutil.Process().children(recursive=True):
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass


def keep_stopping_descendants():
    while True:
        time.sleep(REPEAT_SECONDS)
        stop_descendants()


def cancel_scheduler_wakeups():
    """After the last job (onsuccess, onerror). Snakemake's scheduler wakes
    itself again after each round with a threading.Timer of its
    --max-jobs-per-timespan span (1 s); such a timer is not a daemon, so the
    finished run's process would wait up to that long to exit."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


def expanding_resources():
    """The code of Snakemake's Rule.expand_resources, which wraps any
    exception raised while it evaluates a job's resources, BaseException
    included, into an InputFunctionException."""
    from snakemake.rules import Rule

    return Rule.expand_resources.__code__


def tell(text):
    """A line on stderr, if anyone still reads it (`| tee` dies of Ctrl-C too)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


def interrupt(exception):
    """Raise `exception` where the signal arrived, without a traceback.
    Snakemake runs asyncio tasks (building the DAG, preparing each job):
    raised inside one, the exception would be kept in the task and logged
    with its traceback, so there it is raised from the loop itself, at its
    next step (its tasks are then cancelled quietly)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise exception from None
    loop.call_soon_threadsafe(raise_, exception)


def raise_(exception):
    raise exception


class RunStopper:
    """The main process's handler of SIGTERM and Ctrl-C, from parsing on."""

    def __init__(self):
        self.scheduler = None
        self.local_jobs = True
        self.signal_name = None  # of the signal that stopped the run

    def listen(self):
        """Before the scheduler exists (parsing, building the DAG), a signal
        ends the run at once: no job has started."""
        if threading.current_thread() is not threading.main_thread():
            return  # Snakemake run from another thread (its API): signals are not ours
        for number in SIGNALS:
            signal.signal(number, self.stop)

    def attach(self, scheduler, local_jobs):
        """Just before the scheduler starts (onstart), once Snakemake's own
        SIGTERM handler is in place, replace it. `local_jobs`: whether jobs
        run here; remote jobs are cancelled by their executor, whose commands
        (sbatch, scancel) must not be stopped."""
        self.scheduler, self.local_jobs = scheduler, local_jobs
        if scheduler._user_kill and not self.signal_name:  # Snakemake's handler got one
            self.signal_name = signal.Signals.SIGTERM.name
        self.listen()

    def stop(self, number, frame):
        if self.signal_name:  # a second Ctrl-C, or SIGTERM with it: already on it
            return
        if self.scheduler is not None and runs_inside(frame, expanding_resources()):
            # Snakemake turns anything raised there, an interrupt too, into an
            # error of the run: take the signal again once it is done.
            threading.Timer(REDELIVER_SECONDS, os.kill, (os.getpid(), number)).start()
            return
        self.signal_name = signal.Signals(number).name
        if self.scheduler is None:
            tell(f"snakeshuf: stopped by {self.signal_name} before any job ran; run the same command again")
            interrupt(SystemExit(STOPPED))  # unwinds Snakemake's locks
            return
        if self.local_jobs:
            stop_descendants()
            threading.Thread(target=keep_stopping_descendants, daemon=True).start()
        # Read by the scheduler at its next round: set without its lock.
        self.scheduler._user_kill = "graceful"
        if runs_inside(frame, type(self.scheduler).schedule.__code__):
            tell(f"snakeshuf: {self.signal_name} received: stopping the run's jobs")
            # The scheduler handles this at any point by cancelling its jobs.
            interrupt(KeyboardInterrupt())
