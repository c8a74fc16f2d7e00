#!/usr/bin/env python3
"""Weights and dedup against a plain shuffle of the same corpus (issue 29):

  down      `--weight corpus.txt=0.5`   (a candidate per record, half chosen)
  up        `--weight corpus.txt=1.5`   (a copy and a candidate per record)
  dedup     `--dedup`                   (whole records)
  field     `--dedup-field text`        (a JSONL field: each record parsed), on the corpus as JSONL
  mix       `--dedup --weight corpus.txt=1.5`   (both: copies of the distinct records)

each against `snakeshuf corpus -o out`, run in turn after a warm-up
(shuf_habits.pair): every run's wall time, the medians and the median ratio.

  python bench/mixing.py --size 1G --memory 512M --runs 3
"""

import argparse
import shutil
import tempfile
from pathlib import Path

from make_corpus import generate, parse_size
from shuf_habits import COMMAND, pair

KINDS = {  # (corpus, options)
    "down": ("corpus.txt", "--weight corpus.txt=0.5"),
    "up": ("corpus.txt", "--weight corpus.txt=1.5"),
    "dedup": ("corpus.txt", "--dedup"),
    "field": ("corpus.jsonl", "--dedup-field text"),
    "mix": ("corpus.txt", "--dedup --weight corpus.txt=1.5"),
}


def corpus(work, name, size):
    path = work / name
    if not path.exists() or path.stat().st_size < size:
        with open(path, "wb") as out:
            generate(out, size, seed=1, fmt="jsonl" if name.endswith(".jsonl") else "text")
    return name


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"))
    parser.add_argument("--memory", default="512M")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=list(KINDS), action="append", help="run these pairs only")
    parser.add_argument("--dir", help="where the corpus and outputs go (default: a temporary directory)")
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="snakeshuf-mixing-"))
    work.mkdir(parents=True, exist_ok=True)
    shuf = " ".join(f"'{word}'" for word in COMMAND) + f" --memory {args.memory}"
    for kind in args.only or KINDS:
        name, options = KINDS[kind]
        corpus(work, name, args.size)
        pair(kind, f"{shuf} {name} {options} -o out/s.txt", f"{shuf} {name} -o out/s.txt", work, args.runs)
    if not args.dir:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
