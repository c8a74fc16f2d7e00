#!/usr/bin/env python3
"""The command's shuf habits against its plain use, side by side (issue 28):

  stdin     `cat corpus | snakeshuf - -o out`  against  `snakeshuf corpus -o out`
  head      `snakeshuf -n 10000 corpus -o out` against  `snakeshuf corpus -o out`

Each pair runs in turn, A B A B ..., after a warm-up round, each run from a
clean output (no earlier output, no page cache of it); prints every run's
wall time, the medians and the median of the pairwise ratios A/B.

  python bench/shuf_habits.py --size 4G --memory 512M --runs 3
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from make_corpus import generate, parse_size

REPO = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
           "from snakeshuf.control.start import main; sys.exit(main())", str(REPO / "scripts")]


def timed(shell_command, cwd):
    """Wall seconds of one run (the shell's pipe included)."""
    start = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", shell_command], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def pair(name, a, b, work, runs):
    """Run `a` and `b` in turn (after one warm-up each) and print their times and ratios."""
    walls = {"A": [], "B": []}
    for round_ in range(runs + 1):
        for label, command in (("A", a), ("B", b)):
            shutil.rmtree(work / "out", ignore_errors=True)
            (work / "out").mkdir()
            subprocess.run(["sync"], check=True)
            seconds = timed(command, work)
            if round_:
                walls[label].append(seconds)
    ratios = [x / y for x, y in zip(walls["A"], walls["B"])]
    print(f"{name}: A = {a}\n{' ' * len(name)}  B = {b}")
    for label in "AB":
        print(f"  {label}: median {statistics.median(walls[label]):.2f} s  runs {[round(w, 2) for w in walls[label]]}")
    print(f"  A/B: median {statistics.median(ratios):.3f}  pairs {[round(r, 3) for r in ratios]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"))
    parser.add_argument("--memory", default="512M")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["stdin", "head"], help="run one pair only")
    parser.add_argument("--dir", help="where the corpus and outputs go (default: a temporary directory)")
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="snakeshuf-habits-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    if not corpus.exists() or corpus.stat().st_size != args.size:
        with open(corpus, "wb") as out:
            generate(out, args.size, seed=1, fmt="text")
    shuf = " ".join(f"'{word}'" for word in COMMAND) + f" --memory {args.memory}"
    full = f"{shuf} corpus.txt -o out/s.txt"
    if args.only != "head":
        pair("stdin", f"cat corpus.txt | {shuf} - -o out/s.txt", full, work, args.runs)
    if args.only != "stdin":
        pair("head", f"{shuf} -n 10000 corpus.txt -o out/s.txt", full, work, args.runs)
    if not args.dir:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
