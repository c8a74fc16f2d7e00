"""Bring up (or take down) a real three-node SLURM cluster on this host for the tests.

    python tests/slurm/cluster.py start [--timeout 120]
    python tests/slurm/cluster.py fail NODE      # NODE crashes, as a machine would
    python tests/slurm/cluster.py stop
    python tests/slurm/cluster.py status
    python tests/slurm/cluster.py on NODE COMMAND...   # run COMMAND as if on NODE

`start` installs Debian's munge, slurmctld, slurmd, slurm-client, slurmdbd and
mariadb-server when they are missing, writes a configuration for this host, starts
whatever is not running yet (a failed node included) and waits until every node is
idle. The compute nodes n1, n2 and n3 are three slurmd daemons (`slurmd -N`, which
Debian's build allows), each in a UTS namespace of its own whose hostname is the
node's name: what runs on n2 says `hostname` n2, and a node's crash is the SIGKILL
of every process in its namespace, slurmd and jobs alike. Memory is enforced with
cgroups, so a job that outgrows its request ends OUT_OF_MEMORY as on a real
cluster, and accounting goes through slurmdbd, so `sacct` (which the Snakemake
executor polls) works. SLURM's own defaults stand where a site would keep them
(JobRequeue=1: a job of a failed node is requeued unless it asked not to be); a
node that stops answering is down in about 20 s (short SlurmdTimeout and
MessageTimeout).
The daemons are started directly: these machines have no systemd. Every daemon
this script starts is recorded with its process start time; `stop` stops exactly
those (and what runs in the nodes' namespaces) and nothing else. Needs root.
"""

import argparse
import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ["munge", "slurmctld", "slurmd", "slurm-client", "slurmdbd", "mariadb-server"]
STATE = Path("/run/snakeshuf-slurm")
SLURM_ETC = Path("/etc/slurm")
MARKER = "# written by snakeshuf tests/slurm/cluster.py"
CLUSTER = "snakeshuf"
PARTITION = "debug"
ACCOUNT = "snakeshuf"
DB = {"name": "slurm_acct_db", "user": "slurm", "password": "local-test-only"}
NODES = ["n1", "n2", "n3"]
NODE_PORT = 6820  # n1 answers on 6821, n2 on 6822, ...
CPUS_PER_NODE = 2
# Stopped last to first.
DAEMONS = ["munged", "mariadbd", "slurmdbd", "slurmctld", *(f"slurmd-{node}" for node in NODES)]


class ClusterError(Exception):
    pass


def say(message):
    print(f"[slurm-cluster] {message}", flush=True)


def sh(*command, check=True, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise ClusterError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
    return result


def log_tail(path, lines=15):
    try:
        text = Path(path).read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"\n--- last lines of {path} ---\n" + "\n".join(text)


def wait_until(seconds, what, probe, log=None):
    deadline = time.monotonic() + seconds
    while not probe():
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} not ready after {seconds} s" + (log_tail(log) if log else ""))
        time.sleep(0.5)


def succeeds(*command):
    return lambda: subprocess.run(command, capture_output=True).returncode == 0


# ---------------------------------------------------------------- processes


def start_time(pid):
    """Field 22 of /proc/PID/stat, or None if the process is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def running_pids(name):
    result = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
    return [int(p) for p in result.stdout.split() if start_time(p)]


Daemon = collections.namedtuple("Daemon", "pid started namespace")  # namespace: its UTS namespace


def record(name, pid_file, log):
    """Remember the daemon we just started, from the pid file it writes."""
    def started():
        try:
            return start_time(int(Path(pid_file).read_text().split()[0])) is not None
        except (OSError, ValueError, IndexError):
            return False

    wait_until(20, f"{name} (pid file {pid_file})", started, log)
    pid = int(Path(pid_file).read_text().split()[0])
    (STATE / f"{name}.pid").write_text(f"{pid} {start_time(pid)} {os.readlink(f'/proc/{pid}/ns/uts')}\n")
    say(f"started {name} (pid {pid})")


def recorded(name):
    """The Daemon we started as `name`, alive or not, or None."""
    try:
        pid, started, namespace = (STATE / f"{name}.pid").read_text().split()
    except (OSError, ValueError):
        return None
    return Daemon(int(pid), started, namespace)


def alive(daemon):
    return daemon is not None and start_time(daemon.pid) == daemon.started


def start_daemon(name, command, pid_file, log, foreground=False, running=None):
    """Start `name` unless it runs (`running`: a check of our own, else any process of that name)."""
    if running() if running else running_pids(name):
        say(f"{name} already running")
        return
    Path(pid_file).unlink(missing_ok=True)
    if foreground:
        subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    else:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise ClusterError(f"{name} failed to start: {result.stderr.strip()}" + log_tail(log))
    record(name, pid_file, log)


def stop_recorded(name, timeout=30):
    daemon = recorded(name)
    if daemon is None:
        return
    (STATE / f"{name}.pid").unlink()
    if not alive(daemon):
        return  # exited already, or the pid now belongs to another process
    say(f"stopping {name} (pid {daemon.pid})")
    os.kill(daemon.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(daemon) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive(daemon):
        os.kill(daemon.pid, signal.SIGKILL)


# ---------------------------------------------------------------- configuration


def install_missing():
    missing = [p for p in PACKAGES if sh("dpkg", "-s", p, check=False).returncode != 0]
    if not missing:
        return
    say(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if sh(*install, check=False, env=env).returncode != 0:
        sh("apt-get", "update", env=env)
        sh(*install, env=env)


def write_if_changed(path, text, owner=None, mode=0o644):
    """Write a config file of ours; refuse to overwrite one somebody else wrote."""
    path = Path(path)
    if path.exists() and not path.read_text().startswith(MARKER):
        raise ClusterError(f"{path} exists and was not written by this script; "
                           "move it away to let the tests configure their own cluster")
    changed = not path.exists() or path.read_text() != text
    if changed:
        path.write_text(text)
    os.chmod(path, mode)
    if owner:
        shutil.chown(path, owner, owner)
    return changed


def node_lines():
    """The three nodes share this host's memory (the tests' jobs are small) and
    its cores (oversubscribed: each node has two CPUs)."""
    hardware = dict(item.split("=", 1) for item in sh("slurmd", "-C").stdout.splitlines()[0].split())
    memory = int(hardware["RealMemory"])
    memory = (memory - max(memory // 20, 512)) // len(NODES)  # or slurmctld drains the node
    return "\n".join(
        f"NodeName={node} NodeHostname={node} NodeAddr=127.0.0.1 Port={NODE_PORT + number} "
        f"CPUs={CPUS_PER_NODE} RealMemory={memory} State=UNKNOWN"
        for number, node in enumerate(NODES, 1)
    )


def slurm_conf():
    host = socket.gethostname()
    return f"""{MARKER}
ClusterName={CLUSTER}
SlurmctldHost={host}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
# a failed node is back in service once its slurmd registers again
ReturnToService=2
# a node that stops answering is down, and its jobs NODE_FAIL, in about 20 s
SlurmdTimeout=5
MessageTimeout=5
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd-%n.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd-%n
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd-%n.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
# jobs go to the least loaded node, as they spread over a busy cluster's free nodes
SelectTypeParameters=CR_Core_Memory,CR_LLN
DefMemPerCPU=512
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
# sacct shows the executor's comment (rule and wildcards) for each job
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/cgroup
JobAcctGatherFrequency=2
# finished jobs stay visible to squeue long enough for the executor's status checks
MinJobAge=600
KillWait=5
InactiveLimit=0
{node_lines()}
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


CGROUP_CONF = f"""{MARKER}
CgroupPlugin=autodetect
ConstrainCores=yes
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
AllowedSwapSpace=0
"""

SLURMDBD_CONF = f"""{MARKER}
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc={DB["name"]}
StorageUser={DB["user"]}
StoragePass={DB["password"]}
"""


def make_dirs():
    for path, owner, mode in [
        ("/etc/munge", "munge", 0o700), ("/var/lib/munge", "munge", 0o711),
        ("/var/log/munge", "munge", 0o700), ("/run/munge", "munge", 0o755),
        ("/run/mysqld", "mysql", 0o755), ("/var/log/mysql", "mysql", 0o750),
        ("/run/slurm", "slurm", 0o755), ("/var/spool/slurmctld", "slurm", 0o755),
        ("/var/log/slurm", "slurm", 0o755),
        (str(SLURM_ETC), "root", 0o755), (str(STATE), "root", 0o755),
    ]:
        os.makedirs(path, exist_ok=True)
        shutil.chown(path, owner)
        os.chmod(path, mode)


# ---------------------------------------------------------------- daemons


def start_munge():
    key = Path("/etc/munge/munge.key")
    if not key.exists() or key.stat().st_size == 0:
        sh("mungekey", "--create", f"--keyfile={key}", "--force")
        shutil.chown(key, "munge", "munge")
        key.chmod(0o600)
    if not running_pids("munged"):
        for stale in Path("/run/munge").glob("munge.socket.2*"):
            stale.unlink()
    start_daemon("munged", ["runuser", "-u", "munge", "--", "/usr/sbin/munged"],
                 "/run/munge/munged.pid", "/var/log/munge/munged.log")
    wait_until(10, "munge", succeeds("sh", "-c", "munge -n | unmunge"), "/var/log/munge/munged.log")


def start_accounting():
    if not Path("/var/lib/mysql/mysql").is_dir():
        sh("mariadb-install-db", "--user=mysql", "--datadir=/var/lib/mysql")
    start_daemon("mariadbd", ["/usr/sbin/mariadbd", "--user=mysql", "--pid-file=/run/mysqld/mysqld.pid",
                              "--socket=/run/mysqld/mysqld.sock", "--bind-address=127.0.0.1",
                              "--log-error=/var/log/mysql/error.log"],
                 "/run/mysqld/mysqld.pid", "/var/log/mysql/error.log", foreground=True)
    wait_until(60, "MariaDB", succeeds("mariadb-admin", "ping"), "/var/log/mysql/error.log")
    sh("mariadb", "-e", f"""
        CREATE DATABASE IF NOT EXISTS {DB['name']};
        CREATE USER IF NOT EXISTS '{DB['user']}'@'localhost' IDENTIFIED BY '{DB['password']}';
        GRANT ALL ON {DB['name']}.* TO '{DB['user']}'@'localhost';""")
    write_if_changed(SLURM_ETC / "slurmdbd.conf", SLURMDBD_CONF, owner="slurm", mode=0o600)
    start_daemon("slurmdbd", ["slurmdbd"], "/run/slurm/slurmdbd.pid", "/var/log/slurm/slurmdbd.log")
    wait_until(30, "slurmdbd", succeeds("sacctmgr", "-n", "list", "cluster"), "/var/log/slurm/slurmdbd.log")
    if CLUSTER not in sh("sacctmgr", "-n", "-P", "list", "cluster", "format=cluster").stdout.split():
        sh("sacctmgr", "-i", "add", "cluster", CLUSTER)


def write_slurm_config():
    """slurm.conf first: every SLURM command, sacctmgr included, reads it."""
    changed = write_if_changed(SLURM_ETC / "slurm.conf", slurm_conf())
    changed |= write_if_changed(SLURM_ETC / "cgroup.conf", CGROUP_CONF)
    if changed:
        for name in ("slurmd", "slurmctld"):
            for daemon in DAEMONS:
                if daemon == name or daemon.startswith(f"{name}-"):
                    stop_recorded(daemon)
            if running_pids(name):
                raise ClusterError(f"the configuration changed but {name} was not started by this "
                                   "script; stop it, then run this again")


def start_slurm():
    start_daemon("slurmctld", ["slurmctld"], "/run/slurm/slurmctld.pid", "/var/log/slurm/slurmctld.log")
    wait_until(30, "slurmctld", lambda: "is UP" in sh("scontrol", "ping", check=False).stdout,
               "/var/log/slurm/slurmctld.log")
    for node in NODES:
        start_node(node)


def start_node(node):
    """slurmd -N NODE in a UTS namespace of its own, whose hostname is NODE
    (the check first: `hostname` in the host's namespace would rename the host)."""
    os.makedirs(f"/var/spool/slurmd-{node}", exist_ok=True)
    in_namespace = f'[ "$(readlink /proc/self/ns/uts)" != "{os.readlink("/proc/self/ns/uts")}" ] || exit 99; ' \
                   f'hostname {node} && exec slurmd -N {node}'
    start_daemon(f"slurmd-{node}", ["unshare", "--uts", "--", "sh", "-c", in_namespace],
                 f"/run/slurm/slurmd-{node}.pid", f"/var/log/slurm/slurmd-{node}.log",
                 running=lambda: alive(recorded(f"slurmd-{node}")))


def host_namespaces():
    """This process's UTS namespace, and init's where it may be read."""
    found = {os.readlink("/proc/self/ns/uts")}
    try:
        found.add(os.readlink("/proc/1/ns/uts"))
    except OSError:
        pass
    return found


def namespace_of(node):
    """NODE's UTS namespace, from its slurmd's record (dead or alive): never the host's."""
    daemon = recorded(f"slurmd-{node}")
    if daemon is None or daemon.namespace in host_namespaces():
        return None
    return daemon.namespace


def processes_in(namespace):
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "ns" / "uts") == namespace:
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def kill_all_in(namespace, seconds=10):
    """SIGKILL every process in `namespace` until none is left (a process may
    fork while the others die); returns how many were killed."""
    killed = set()
    deadline = time.monotonic() + seconds
    while victims := [pid for pid in processes_in(namespace) if start_time(pid)]:
        if time.monotonic() > deadline:
            raise ClusterError(f"processes {victims} of namespace {namespace} outlived SIGKILL")
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return len(killed)


def fail(node):
    """NODE crashes: SIGKILL to everything in its namespace, slurmctld not told."""
    namespace = namespace_of(node)
    if not alive(recorded(f"slurmd-{node}")) or namespace is None:
        raise ClusterError(f"{node} is not running")
    say(f"{node} failed: killed {kill_all_in(namespace)} processes")


def run_on(node, command):
    """Run `command` in NODE's namespace, as a process of that machine."""
    daemon = recorded(f"slurmd-{node}")
    if not alive(daemon):
        raise ClusterError(f"{node} is not running")
    os.execvp("nsenter", ["nsenter", "-t", str(daemon.pid), "-u", "--", *command])


def add_account():
    if not sh("sacctmgr", "-n", "-P", "list", "account", ACCOUNT, "format=account").stdout.strip():
        sh("sacctmgr", "-i", "add", "account", ACCOUNT, "Description=snakeshuf tests", "Organization=local")
    for user in {"root", os.environ.get("SUDO_USER") or "root"}:
        if not sh("sacctmgr", "-n", "-P", "list", "assoc", f"user={user}", f"account={ACCOUNT}",
                  "format=user").stdout.strip():
            sh("sacctmgr", "-i", "add", "user", user, f"Account={ACCOUNT}", f"DefaultAccount={ACCOUNT}")


def wait_for_idle_nodes(timeout):
    def idle(node):
        state = sh("sinfo", "-h", "-n", node, "-o", "%T", check=False).stdout.strip()
        if "drain" in state or state.startswith(("down", "fail")):
            sh("scontrol", "update", f"NodeName={node}", "State=RESUME", check=False)
        return state in ("idle", "mixed", "allocated")

    for node in NODES:
        wait_until(timeout, f"node {node}", lambda: idle(node), f"/var/log/slurm/slurmd-{node}.log")


def start(timeout):
    install_missing()
    make_dirs()
    write_slurm_config()
    start_munge()
    start_accounting()
    start_slurm()
    add_account()
    wait_for_idle_nodes(timeout)
    say(f"up: nodes {', '.join(NODES)}, partition {PARTITION}, account {ACCOUNT}, memory enforced by cgroups")


def stop():
    if (STATE / "slurmctld.pid").exists():
        jobs = sh("squeue", "-h", "-o", "%i", check=False, timeout=10).stdout.split()
        if jobs:
            sh("scancel", *jobs, check=False, timeout=10)
    namespaces = [namespace_of(node) for node in NODES]
    for name in reversed(DAEMONS):
        stop_recorded(name)
    for namespace in filter(None, namespaces):  # job steps of a node outlive its slurmd
        kill_all_in(namespace)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", required=True)
    start_parser = actions.add_parser("start")
    start_parser.add_argument("--timeout", type=int, default=120, help="seconds to wait for idle nodes")
    actions.add_parser("stop")
    actions.add_parser("status")
    actions.add_parser("fail").add_argument("node", choices=NODES)
    on_parser = actions.add_parser("on")
    on_parser.add_argument("node", choices=NODES)
    on_parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("slurm-cluster: needs root (daemons, /etc/slurm, /etc/munge)")
    try:
        if args.action == "start":
            start(args.timeout)
        elif args.action == "stop":
            stop()
        elif args.action == "fail":
            fail(args.node)
        elif args.action == "on":
            run_on(args.node, args.command)
        else:
            print(sh("sinfo", check=False).stdout or "no cluster answering")
    except ClusterError as error:
        sys.exit(f"slurm-cluster: error: {error}")


if __name__ == "__main__":
    main()
