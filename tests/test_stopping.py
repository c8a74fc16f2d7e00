"""SIGTERM and Ctrl-C stop a run within seconds, its jobs with it, at any
moment (while Snakemake selects jobs included), and the same command then
resumes to the bytes an undisturbed run gives."""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from conftest import REPO, corpus_file, run_workflow, snakemake_command
from snakeshuf.control.stopping import SIGNALS, STOPPED, RunStopper

STOP_SECONDS = 5
SELECTING = "Select jobs to execute"
# (signal, seed of its random moments, tries)
ROUNDS = [(signal.SIGTERM, 11, 10), (signal.SIGINT, 12, 4)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """60 MB at memory_mb=160: several split and bucket jobs, short ones."""
    path = tmp_path_factory.mktemp("stopping") / "corpus.txt"
    corpus_file(path, 60 << 20, seed=8)
    return str(path)


def config_for(corpus):
    return {"inputs": [corpus], "output": "out.txt", "seed": 3, "memory_mb": 160}


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory, corpus):
    """The reference bytes, and how many times an undisturbed run selects jobs."""
    workdir = tmp_path_factory.mktemp("undisturbed")
    result = run_workflow(workdir, config_for(corpus))
    return (workdir / "out.txt").read_bytes(), result.stderr.count(SELECTING)


def processes_in(workdir):
    """Processes still working in `workdir` (the run's jobs run there)."""
    found = []
    for process in psutil.process_iter():
        try:
            if Path(process.cwd()) == workdir:
                found.append(process.cmdline())
        except psutil.Error:  # gone, a zombie, or not ours to look at
            pass
    return found


def run_and_signal(command, number, moment, env=os.environ, cwd=None, hang_up=False):
    """Run `command` (a workflow run whose bucket 0 is slow); at `moment` =
    (text, k, delay), delay seconds after the k-th line with `text` in its
    output, send it `number` (`hang_up`: just after closing the pipe it
    writes to, as a `| tee` that Ctrl-C ended first; closed any earlier,
    Snakemake may end the run itself at its next line, before the signal).
    Returns (seconds it took to exit after the signal, or None if it ended
    first; exit code; what it wrote)."""
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd, start_new_session=True,
        env={**env, "SNAKESHUF_SLOW_JOBS": "shuffle_bucket-0"},  # a job of minutes: stopped, not awaited
    )
    text, k, delay = moment
    lines, seen = [], 0
    sent = {}  # when the signal went
    for line in process.stderr:
        lines.append(line)
        seen += text in line
        if seen == k:
            threading.Timer(delay, send_if_running, (process, number, sent, hang_up)).start()
            break
    if not hang_up:
        reader = threading.Thread(target=lambda: lines.extend(process.stderr))
        reader.start()
    process.wait(timeout=120)
    if not hang_up:
        reader.join()
    seconds = time.monotonic() - sent["at"] if sent else None
    return seconds, process.returncode, "".join(lines)


def send_if_running(process, number, sent, hang_up=False):
    """SIGINT as Ctrl-C in a terminal sends it, to every process of the run;
    anything else to the main process alone, as `kill` does."""
    if hang_up:
        process.stderr.close()
    if process.poll() is None:
        sent["at"] = time.monotonic()
        if number == signal.SIGINT:
            os.killpg(process.pid, number)
        else:
            process.send_signal(number)


def wait_until_gone(workdir, seconds=2):
    deadline = time.monotonic() + seconds
    while processes_in(workdir) and time.monotonic() < deadline:
        time.sleep(0.05)
    return processes_in(workdir)


def assert_stopped_and_resumed(workdir, config, reference, number, moment, hang_up=False):
    """Signal a run at `moment` (see run_and_signal): it must end within
    STOP_SECONDS, say so, leave no job running and no partial output, and the
    same command (no --unlock) must then give the reference's bytes."""
    seconds, returncode, stderr = run_and_signal(snakemake_command(workdir, config), number, moment, hang_up=hang_up)
    context = f"{number.name} at {moment}:\n{stderr[-3000:]}"
    assert "Traceback" not in stderr, context
    # Bucket 0 takes 30 s more: the signal always finds the run going.
    assert seconds is not None and returncode != 0, f"the run was not stopped; {context}"
    assert seconds < STOP_SECONDS, f"exited {seconds:.1f} s after the signal; {context}"
    if not hang_up:
        last_lines = "\n".join(stderr.splitlines()[-6:])
        assert f"stopped by {number.name}" in last_lines, context
    assert not wait_until_gone(workdir), f"jobs still running; {context}"
    out = workdir / "out.txt"
    assert not out.exists() or out.read_bytes() == reference, context
    run_workflow(workdir, config)  # the same command, no --unlock
    assert out.read_bytes() == reference, context


@pytest.mark.parametrize("number,seed,tries", ROUNDS, ids=[s.name for s, _, _ in ROUNDS])
def test_a_signal_at_random_moments_stops_the_run_and_jobs(tmp_path, corpus, undisturbed, number, seed, tries):
    reference, selections = undisturbed
    rng = random.Random(seed)
    for attempt in range(tries):
        moment = (SELECTING, rng.randint(1, selections - 2), rng.uniform(0, 1.0))  # the last two select gather and all
        assert_stopped_and_resumed(tmp_path / f"try{attempt}", config_for(corpus), reference, number, moment)


def test_a_signal_while_snakemake_starts_ends_the_run_and_leaves_no_lock(tmp_path, corpus, undisturbed):
    """From the plan (printed while parsing) through building the DAG, taking
    Snakemake's locks and onstart, to the first job."""
    reference, _ = undisturbed
    for attempt, delay in enumerate([0, 0.1, 0.2, 0.3, 0.5, 0.7]):
        number = (signal.SIGTERM, signal.SIGINT)[attempt % 2]
        moment = ("snakeshuf plan:", 1, delay)
        assert_stopped_and_resumed(tmp_path / f"try{attempt}", config_for(corpus), reference, number, moment)


def test_a_signal_stops_the_run_when_nobody_reads_its_output(tmp_path, corpus, undisturbed):
    """`snakeshuf ... 2>&1 | tee log` and Ctrl-C: tee dies first."""
    reference, _ = undisturbed
    moment = ("shuffle_bucket/0.log", 1, 1.0)  # a second after the slow bucket 0 started
    assert_stopped_and_resumed(tmp_path, config_for(corpus), reference, signal.SIGTERM, moment, hang_up=True)


# Run in a process of its own: once stopping, the stopper goes on stopping
# every process its process starts.
LOCK_HELD = """
import json, os, signal, subprocess, sys, threading, time
sys.path.insert(0, sys.argv[1])
from snakeshuf.control.stopping import RunStopper

class Scheduler:  # the part of Snakemake's job scheduler the stopper relies on
    def __init__(self):
        self._lock = threading.Lock()
        self._user_kill = None

    def schedule(self):
        with self._lock:  # as while Snakemake selects jobs
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(float(sys.argv[2]))

job = subprocess.Popen(["sleep", "60"])
scheduler = Scheduler()
RunStopper().attach(scheduler, local_jobs=True)
started = time.monotonic()
try:
    scheduler.schedule()
    interrupted = False
except KeyboardInterrupt:
    interrupted = True
print(json.dumps({
    "interrupted": interrupted,
    "seconds": time.monotonic() - started,
    "job": job.wait(timeout=5),
    "user_kill": scheduler._user_kill,
    "lock_free": not scheduler._lock.locked(),
}))
"""


def test_a_signal_while_the_scheduler_holds_its_lock_interrupts_it_and_stops_jobs():
    """Snakemake's own handler waits for that lock here, forever."""
    result = subprocess.run(
        [sys.executable, "-c", LOCK_HELD, str(REPO / "scripts"), str(STOP_SECONDS)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["interrupted"] and outcome["seconds"] < 1, outcome
    assert outcome["job"] == -signal.SIGTERM, "the running job was not stopped"
    assert outcome["user_kill"] == "graceful" and outcome["lock_free"], outcome


# Snakemake's scheduler prepares each job in an asyncio task of a loop of its own.
PREPARING = """
import asyncio, json, os, signal, sys
sys.path.insert(0, sys.argv[1])
from snakeshuf.control.stopping import RunStopper

class Scheduler:
    _user_kill = None

    def schedule(self):
        asyncio.run(self.prepare())

    async def prepare(self):
        async with asyncio.TaskGroup() as group:  # as Job.check_protected_output
            group.create_task(self.protected())

    async def protected(self):
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(5)

scheduler = Scheduler()
RunStopper().attach(scheduler, local_jobs=False)
try:
    scheduler.schedule()
    print(json.dumps("not interrupted"))
except KeyboardInterrupt:
    print(json.dumps("interrupted"))
"""


def test_a_signal_while_the_scheduler_prepares_a_job_interrupts_it_without_a_traceback():
    """Found by CI: raised inside one of the job's asyncio tasks, the
    interrupt was logged with its traceback."""
    result = subprocess.run(
        [sys.executable, "-c", PREPARING, str(REPO / "scripts")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and json.loads(result.stdout) == "interrupted", result.stderr
    assert "Traceback" not in result.stderr, result.stderr


# Snakemake evaluates a job's resources (Rule.expand_resources) in the
# scheduler, wrapping anything raised there, an interrupt too, into an error.
RESOURCES = """
import json, os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from snakemake.rules import Rule
from snakeshuf.control.stopping import RunStopper

class Scheduler:
    _user_kill = None

    def schedule(self):
        try:
            Rule.expand_resources(None, None, None, None)
        except TypeError:  # what a KeyboardInterrupt becomes there: an error of the run
            print(json.dumps("interrupted while resources were expanded"))
            return
        time.sleep(5)

def expanding(self, *args):
    import os, signal  # it runs with Snakemake's module globals
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # its handler runs here, at once
        for _ in range(200_000):
            pass
    except BaseException:
        raise TypeError  # as Snakemake raises InputFunctionException

Rule.expand_resources.__code__ = expanding.__code__
RunStopper().attach(Scheduler(), local_jobs=False)
try:
    Scheduler().schedule()
except KeyboardInterrupt:
    print(json.dumps("interrupted after"))
"""


def test_a_signal_while_the_scheduler_expands_resources_interrupts_it_after():
    """Found by a full local run: SIGTERM while Snakemake evaluated a job's
    resources ended the run with InputFunctionException, not as stopped."""
    result = subprocess.run(
        [sys.executable, "-c", RESOURCES, str(REPO / "scripts")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and json.loads(result.stdout) == "interrupted after", result.stderr


# Snakemake holds its locks in a `with` block while it builds the DAG.
LOCKED = """
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from snakeshuf.control.stopping import RunStopper

RunStopper().listen()
open(sys.argv[2], "w").close()
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
finally:
    os.remove(sys.argv[2])
"""


def test_a_signal_before_the_scheduler_exists_ends_the_run_and_unwinds_locks(tmp_path):
    lock = tmp_path / "lock"
    result = subprocess.run(
        [sys.executable, "-c", LOCKED, str(REPO / "scripts"), str(lock)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == STOPPED and not lock.exists(), result.stderr
    assert result.stderr.strip() == "snakeshuf: stopped by SIGTERM before any job ran; run the same command again"


class Scheduler:
    def __init__(self):
        self._user_kill = None

    def schedule(self):
        pass


def test_a_signal_before_the_scheduler_runs_stops_it_at_its_first_round():
    saved = {number: signal.getsignal(number) for number in SIGNALS}
    scheduler = Scheduler()
    try:
        RunStopper().attach(scheduler, local_jobs=False)
        os.kill(os.getpid(), signal.SIGINT)  # outside schedule(): no KeyboardInterrupt
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
    assert scheduler._user_kill == "graceful"


# Snakemake's scheduler wakes itself after each round with a threading.Timer
# of this span; Python waits for such a timer before the process exits.
LONG_WAKEUP_SPAN = "100/300s"


@pytest.mark.parametrize("fails", [False, True], ids=["finished", "failed"])
def test_an_ended_run_exits_without_waiting_for_the_schedulers_wakeup(tmp_path, fails):
    corpus = corpus_file(tmp_path / "corpus.txt", 20_000, seed=4)
    command = snakemake_command(tmp_path / "run", {"inputs": [corpus], "output": "out.txt"},
                                "--max-jobs-per-timespan", LONG_WAKEUP_SPAN)
    env = {**os.environ, "SNAKESHUF_FAIL_BUCKETS": "0" if fails else ""}
    # Without the cancel the process would live on for 300 s after its last job.
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == (1 if fails else 0), result.stderr[-3000:]


# Snakemake builds its DAG in asyncio tasks, in a TaskGroup.
WHILE_TASKS_RUN = """
import asyncio, os, signal, sys
sys.path.insert(0, sys.argv[1])
from snakeshuf.control.stopping import RunStopper
RunStopper().listen()

async def work(i):
    if i == 3:
        os.kill(os.getpid(), getattr(signal, sys.argv[2]))
    for _ in range(1000):
        await asyncio.sleep(0)

async def main():
    async with asyncio.TaskGroup() as tg:
        for i in range(10):
            tg.create_task(work(i))

runner = asyncio.Runner()
try:
    runner.run(main())
finally:
    runner.close()
print("not stopped")
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_signal_inside_an_asyncio_task_ends_the_run_without_a_traceback(name):
    """Found by this suite (1 run of the 'while Snakemake starts' test in 4):
    raised inside one of the tasks, the exit was kept in it and logged with its
    traceback when Snakemake closed its event loop."""
    result = subprocess.run([sys.executable, "-c", WHILE_TASKS_RUN, str(REPO / "scripts"), name],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"stopped by {name} before any job ran" in result.stderr
    assert "Traceback" not in result.stderr and "not stopped" not in result.stdout, result.stderr
