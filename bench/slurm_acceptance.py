#!/usr/bin/env python3
"""The SLURM profile's acceptance run: the same corpus shuffled locally and
through profiles/slurm on the cluster that `sinfo` reaches, with the same seed.

Reports whether the two outputs are byte-identical and, from sacct, every
job's rule, state and requested memory against what the plan asks for
(memory_mb + CLUSTER_JOB_OVERHEAD_MB), with both wall times.

  python bench/slurm_acceptance.py --corpus /tmp/c1g.txt --memory-mb 512
"""

import argparse
import collections
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from snakeshuf.planning.memory import CLUSTER_JOB_OVERHEAD_MB  # noqa: E402

Job = collections.namedtuple("Job", "id comment state step_state mem_mb nodes")


def sacct_jobs(workdir, since="now-3hours"):
    """Every SLURM job that ran in workdir since `since` (sacct's --starttime),
    oldest first. comment is the
    executor's rule_<rule>_wildcards_<values>. step_state is that of step 0,
    where srun runs the rule: when a rule is killed for memory, that step ends
    OUT_OF_MEMORY and the job as a whole FAILED (the jobstep wrapper around it
    exits 1). The first task of an array job runs its rule without srun, so it
    has no step 0. nodes is where it ran (SLURM's node list)."""
    result = subprocess.run(
        ["sacct", "-n", "-P", "--starttime", since, "-o", "JobID,Comment,State,ReqMem,WorkDir,NodeList"],
        capture_output=True, text=True, check=True,
    )
    jobs, step_states = [], {}
    for line in result.stdout.splitlines():
        job_id, comment, state, requested, job_dir, nodes = line.split("|")
        if job_id.endswith(".0"):
            step_states[job_id.removesuffix(".0")] = state.split()[0]
        elif "." not in job_id and Path(job_dir) == Path(workdir):
            jobs.append(Job(job_id, comment, state.split()[0], None, int(requested.rstrip("M")), nodes))
    jobs.sort(key=lambda job: [int(part) for part in job.id.split("_")])  # array tasks: JOB_TASK
    return [job._replace(step_state=step_states.get(job.id, "NO STEP")) for job in jobs]


def rule_of(job):
    return job.comment.removeprefix("rule_").split("_wildcards")[0]


def snakemake(workdir, config, *args):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(json.dumps(config))
    started = time.monotonic()
    subprocess.run(
        ["timeout", "-k", "10", "7200", str(Path(sys.executable).parent / "snakemake"),
         "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(workdir / "config.yaml"), "--quiet", *args],
        check=True,
    )
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, help="the file to shuffle")
    parser.add_argument("--memory-mb", type=int, default=512)
    parser.add_argument("--workdir", default="slurm-acceptance")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    config = {"inputs": [str(Path(args.corpus).resolve())], "output": "out.txt",
              "memory_mb": args.memory_mb, "seed": 2026}

    local_seconds = snakemake(workdir / "local", config, "--cores", "2")
    slurm_seconds = snakemake(workdir / "slurm", config, "--workflow-profile", str(REPO / "profiles" / "slurm"),
                              "--slurm-init-seconds-before-status-checks", "2")
    identical = (workdir / "local" / "out.txt").read_bytes() == (workdir / "slurm" / "out.txt").read_bytes()
    print(f"local --cores 2: {local_seconds:.1f} s; SLURM: {slurm_seconds:.1f} s; byte-identical: {identical}")

    planned = args.memory_mb + CLUSTER_JOB_OVERHEAD_MB
    table = collections.Counter((rule_of(job), job.state, job.step_state, job.mem_mb) for job in sacct_jobs(workdir / "slurm"))
    print(f"sacct (planned --mem {planned} MB):")
    for (rule, state, step, mem), count in sorted(table.items()):
        print(f"  {rule:15} x{count:<3} job {state}, step 0 {step}, ReqMem {mem} MB")
    all_good = identical and all(state == "COMPLETED" and mem == planned for (_, state, _, mem) in table)
    sys.exit(0 if all_good else 1)


if __name__ == "__main__":
    main()
