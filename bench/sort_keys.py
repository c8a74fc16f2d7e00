#!/usr/bin/env python3
"""How long a bucket job takes to order one key range's keys: keys.order_by_key
against NumPy's stable argsort (the order it must equal), best of several.

    python bench/sort_keys.py [--repeat 3] [KEYS:KEY_RANGES ...]

A key range's keys are real record keys that share the key range's top bits,
as in a run; the defaults are a key range of a 1 GiB run at memory_mb 512
(625,313 keys of 2 key ranges) and of 10 TiB of 80-byte records at 1024 and
4096 MB (4.23 M keys of 32,480; 18.9 M keys of 7,284).
"""

import argparse
import sys
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from snakeshuf.planning import keys as keylib  # noqa: E402

SIZES = ["625313:2", "4230000:32480", "18900000:7284"]


def keys_of_one_key_range(n, key_ranges):
    """n record keys moved into the middle key range of `key_ranges`."""
    width = (1 << 64) // key_ranges
    keys = keylib.record_keys(1, 0, np.arange(n))
    return np.uint64(key_ranges // 2 * width) + keys % np.uint64(width)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", default=SIZES, metavar="KEYS:KEY_RANGES")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| keys | key ranges | order_by_key (ms) | stable argsort (ms) |\n|---|---|---|---|")
    for size in args.sizes:
        n, key_ranges = map(int, size.split(":"))
        keys = keys_of_one_key_range(n, key_ranges)
        assert np.array_equal(keylib.order_by_key(keys), np.argsort(keys, kind="stable"))
        ours = min(timeit.repeat(lambda: keylib.order_by_key(keys), number=1, repeat=args.repeat))
        numpy = min(timeit.repeat(lambda: np.argsort(keys, kind="stable"), number=1, repeat=args.repeat))
        print(f"| {n:,} | {key_ranges:,} | {ours * 1e3:.1f} | {numpy * 1e3:.1f} |", flush=True)


if __name__ == "__main__":
    main()
