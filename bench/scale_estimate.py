#!/usr/bin/env python3
"""Expected wall time of a run on a cluster, from per-job speeds measured here
and the job counts of the real plan (issue 31, docs/scale.md).

It measures, on this machine, a plain run (one output file: the bucket jobs
write it in place) and a sharded one (gather joins the bucket jobs' pieces),
reads each stage's wall time from the summaries, and plans (from sparse files,
stat only) the corpus sizes asked for. Then for each size and node count:

  stage time = max(waves x one job's time,       the CPU bound
                   bytes moved / filesystem,       the shared filesystem
                   bytes moved per node / client)  each node's link to it

where split and shuffle each read and write the data once, and gather (for a
sharded or compressed output) copies it once in one job. Snakemake's --jobs
must allow nodes x cores jobs at once (the profile's 100 does not at 64 nodes).

  python bench/scale_estimate.py --size 2G --fs-gbps 10 --client-gbps 1.25
  python bench/scale_estimate.py --plain s.summary.json --sharded t.summary.json
"""

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from make_corpus import generate, parse_size

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from snakeshuf.outputs.namespace import RunFiles  # noqa: E402
from snakeshuf.planning.plan import Chunking, make_plan, smallest_memory_for  # noqa: E402

COMMAND = [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
           "from snakeshuf.control.start import main; sys.exit(main())", str(REPO / "scripts")]
TIB = 1 << 40
SPARSE_FILE_BYTES = 256 << 30
MEASURED_CORES = 2


def measured_run(work, memory, *options):
    """The summary of one run of the command on work/corpus.txt."""
    out = work / f"out{len(options)}" / "s.txt"
    subprocess.run([*COMMAND, "--memory", memory, "--cores", str(MEASURED_CORES), *options,
                    str(work / "corpus.txt"), "-o", str(out)], check=True, stderr=subprocess.DEVNULL)
    return json.loads(Path(f"{out}.summary.json").read_text())


def speeds(plain, sharded):
    """Bytes per second of one job of each stage: split and shuffle from the
    plain run (jobs side by side on MEASURED_CORES cores), gather (one job
    joining pieces) from the sharded one."""
    def per_job(summary, stage):
        s = summary["stages"][stage]
        return summary["bytes"] / (s["seconds"] * min(s["jobs"], MEASURED_CORES))
    return {"split": per_job(plain, "split"), "shuffle": per_job(plain, "shuffle"),
            "gather": sharded["bytes"] / sharded["stages"]["gather"]["seconds"]}


def job_counts(total_bytes, memory_mb, max_chunk_gb):
    """(split jobs, bucket jobs, memory_mb) of the real plan for `total_bytes`
    of input, at `memory_mb` or the least that plans it in few enough jobs."""
    chunking = Chunking("auto", max_chunk_gb)
    memory_mb = max(memory_mb, smallest_memory_for(total_bytes, chunking))
    with tempfile.TemporaryDirectory() as directory:
        for i in range(math.ceil(total_bytes / SPARSE_FILE_BYTES)):
            with open(Path(directory) / f"f{i:05}.txt", "wb") as handle:
                handle.truncate(min(SPARSE_FILE_BYTES, total_bytes - i * SPARSE_FILE_BYTES))
        out = f"{directory}/out.txt"
        plan = make_plan([f"{directory}/f*.txt"], RunFiles(out, (out,), ()), memory_mb, chunking)
        return len(plan.chunks), plan.buckets, memory_mb


def stage_seconds(total_bytes, jobs, speed, cluster, passes=2):
    """The stage's wall time: jobs in waves over every core, or the
    filesystem's bandwidth for `passes` moves of the data, whichever is longer."""
    cores = cluster["nodes"] * cluster["cores"]
    cpu = math.ceil(jobs / cores) * total_bytes / jobs / speed
    shared = passes * total_bytes / cluster["fs"]
    per_node = passes * total_bytes / min(cluster["nodes"], jobs) / cluster["client"]
    return max(cpu, shared, per_node)


def estimate(total_bytes, counts, rates, cluster):
    split_jobs, bucket_jobs, _ = counts
    split = stage_seconds(total_bytes, split_jobs, rates["split"], cluster)
    shuffle = stage_seconds(total_bytes, bucket_jobs, rates["shuffle"], cluster)
    gather = stage_seconds(total_bytes, 1, rates["gather"], cluster, passes=1)
    return split, shuffle, gather


def hours(seconds):
    return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds / 60:,.0f} min"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=parse_size("2G"), help="the measured corpus")
    parser.add_argument("--memory", default="2048M", help="memory_mb of the measured runs")
    parser.add_argument("--plain", help="a plain run's summary (instead of measuring one)")
    parser.add_argument("--sharded", help="a sharded run's summary (instead of measuring one)")
    parser.add_argument("--keep", help="a directory to keep the measured runs' summaries in")
    parser.add_argument("--tib", default="1,10,100")
    parser.add_argument("--nodes", default="1,8,64")
    parser.add_argument("--cores", type=int, default=16, help="per node, one job each")
    parser.add_argument("--memory-mb", type=int, default=3584, help="of each cluster job (raised where a plan needs it)")
    parser.add_argument("--max-chunk-gb", type=int, default=50)
    parser.add_argument("--fs-gbps", type=float, default=10.0, help="the shared filesystem, all nodes together")
    parser.add_argument("--client-gbps", type=float, default=1.25, help="one node's link to it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="snakeshuf-scale-") as scratch:
        work = Path(scratch)
        if not (args.plain and args.sharded):
            with open(work / "corpus.txt", "wb") as out:
                generate(out, args.size, seed=1, fmt="text")
        plain = json.loads(Path(args.plain).read_text()) if args.plain else measured_run(work, args.memory)
        sharded = (json.loads(Path(args.sharded).read_text()) if args.sharded
                   else measured_run(work, args.memory, "--shards", "4"))
        if args.keep:
            for name, summary in (("plain", plain), ("sharded", sharded)):
                (Path(args.keep) / f"{name}.summary.json").write_text(json.dumps(summary))
    rates = speeds(plain, sharded)
    print("one job, MB/s: " + ", ".join(f"{stage} {rate / 1e6:,.0f}" for stage, rate in rates.items()))
    print(f"cluster: {args.cores} cores a node, memory_mb {args.memory_mb}, filesystem {args.fs_gbps} GB/s, "
          f"{args.client_gbps} GB/s a node, max_chunk_gb {args.max_chunk_gb}\n")
    print("| input | memory_mb | split / bucket jobs | nodes | split | shuffle | gather (sharded) | total, one file | total, sharded |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tib in map(float, args.tib.split(",")):
        total = int(tib * TIB)
        counts = job_counts(total, args.memory_mb, args.max_chunk_gb)
        for nodes in map(int, args.nodes.split(",")):
            cluster = {"nodes": nodes, "cores": args.cores, "fs": args.fs_gbps * 1e9, "client": args.client_gbps * 1e9}
            split, shuffle, gather = estimate(total, counts, rates, cluster)
            print(f"| {tib:g} TiB | {counts[2]} | {counts[0]:,} / {counts[1]:,} | {nodes} | {hours(split)} | {hours(shuffle)} "
                  f"| {hours(gather)} | {hours(split + shuffle)} | {hours(split + shuffle + gather)} |", flush=True)


if __name__ == "__main__":
    main()
