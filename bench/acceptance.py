#!/usr/bin/env python3
"""The core workflow's acceptance run, on real sizes.

Shuffles a generated corpus plus a real-world text file together with
memory_mb=256 on --cores 2, then again with memory_mb=512 on --cores 1, and
reports: whether the outputs are byte-identical, whether the output's records
equal the input's as a multiset, every job's peak RSS, and chi-square tests on
the output (position vs origin, neighbours' origins) over its unique lines.

  python bench/acceptance.py --corpus /tmp/c1g.txt --real /var/lib/dpkg/status
"""

import argparse
import filecmp
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import chi2_contingency

REPO = Path(__file__).resolve().parent.parent
BINS = 10


def run(workdir, inputs, memory_mb, cores):
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"inputs": inputs, "output": "out.txt", "memory_mb": memory_mb, "seed": 2026}
    (workdir / "config.yaml").write_text(json.dumps(config))
    snakemake = Path(sys.executable).parent / "snakemake"
    subprocess.run(
        [str(snakemake), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(workdir / "config.yaml"), "--cores", str(cores), "--quiet"],
        check=True,
    )
    peaks = []
    for log in workdir.glob("logs/*/*/*.log"):
        peaks += [json.loads(line)["peak_rss_mb"] for line in log.read_text().splitlines() if line.startswith("{")]
    return workdir / "out.txt", max(peaks), len(peaks)


def line_digests(path):
    """64-bit digests of the lines of a file, in order."""
    with open(path, "rb") as handle:
        return np.array(
            [int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "little") for line in handle],
            dtype=np.uint64,
        )


def pvalue(rows, cols):
    table = np.zeros((BINS, BINS))
    np.add.at(table, (rows, cols), 1)
    return chi2_contingency(table).pvalue


def uniformity(inputs, output):
    source = np.concatenate([line_digests(p) for p in inputs])
    shuffled = line_digests(output)
    values, counts = np.unique(source, return_counts=True)
    unique = values[counts == 1]
    origin_of = dict(zip(source.tolist(), range(len(source))))
    keep = np.isin(shuffled, unique)
    origins = np.array([origin_of[d] for d in shuffled[keep].tolist()])
    n = len(source)
    in_bin = origins * BINS // n
    out_bin = np.flatnonzero(keep) * BINS // len(shuffled)
    same_multiset = np.array_equal(np.sort(source), np.sort(shuffled))
    return {
        "records": n,
        "unique records tested": int(keep.sum()),
        "multiset equal": bool(same_multiset),
        "p position vs origin": pvalue(in_bin, out_bin),
        "p neighbours' origins": pvalue(in_bin[:-1], in_bin[1:]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--real", default="/var/lib/dpkg/status", help="a real-world text file")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "snakeshuf-acceptance")
    args = parser.parse_args()
    inputs = [str(Path(args.corpus).resolve()), str(Path(args.real).resolve())]
    first, peak_256, jobs_256 = run(args.workdir / "m256-c2", inputs, 256, 2)
    second, peak_512, jobs_512 = run(args.workdir / "m512-c1", inputs, 512, 1)
    print(f"memory_mb=256, --cores 2: {jobs_256} jobs, largest peak RSS {peak_256:.1f} MB")
    print(f"memory_mb=512, --cores 1: {jobs_512} jobs, largest peak RSS {peak_512:.1f} MB")
    identical = filecmp.cmp(first, second, shallow=False)
    print(f"byte-identical outputs: {identical}")
    for key, value in uniformity(inputs, first).items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
