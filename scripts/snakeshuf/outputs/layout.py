"""The output layout: one global order of records, cut into files.

The order never depends on the layout; only the cuts do. A layout is a list
of splits (one unnamed split for the whole output when `splits` is empty),
each cut into shards whose record counts differ by at most one. Concatenating
every file in layout order gives the single-file output for the same seed.
"""

import math
import os
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import numpy as np

from snakeshuf.errors import ConfigError, LayoutError
from snakeshuf.planning.plan import check_utf8
from snakeshuf.records.codecs import OUTPUT_SUFFIXES

REST = "rest"
HEAD, FRACTION = "head", "fraction"  # config keys: the part of the one order a run publishes
MAX_FILES = 10_000  # output files of one run: each costs a job's file handle and a piece per bucket
# Compression suffixes snakeshuf does not write: an output so named would be plain text.
UNWRITTEN_SUFFIXES = (".xz", ".bz2", ".lzma", ".lz4", ".zstd", ".zip", ".br", ".z")


@dataclass(frozen=True)
class Split:
    name: str  # "" when there are no splits
    size: object  # a fraction (float), a record count (int) or REST
    shards: int


def read_layout(splits, shards):
    """The splits of config keys 'splits' and 'shards', checked."""
    if shards > MAX_FILES:
        raise ConfigError(f"config key 'shards': {shards:,} is more than {MAX_FILES:,} output files")
    if not splits:
        return (Split("", REST, shards),)
    if shards != 1:
        raise ConfigError(
            "config keys 'shards' and 'splits' are both set: with splits, shard each split "
            "instead, e.g. splits: {train: {size: rest, shards: 16}, valid: 10000}"
        )
    layout = tuple(split_from_config(name, value) for name, value in splits.items())
    files = sum(s.shards for s in layout)
    if files > MAX_FILES:
        raise ConfigError(f"config key 'splits': the shards add up to {files:,} files, more than {MAX_FILES:,}")
    rests = [s.name for s in layout if s.size == REST]
    counts = [s.name for s in layout if isinstance(s.size, int)]
    total = sum(Decimal(repr(s.size)) for s in layout if isinstance(s.size, float))
    if len(rests) > 1:
        raise ConfigError(f"config key 'splits': only one split may be 'rest' ({', '.join(rests)} are)")
    if rests and total > 1:
        raise ConfigError(f"config key 'splits': the fractions add up to {total}, more than 1")
    if not rests and counts:
        raise ConfigError(
            f"config key 'splits': split '{counts[0]}' is a record count, so one split must be 'rest' "
            "(to take what is left); without one, every size must be a fraction"
        )
    if not rests and total != 1:
        raise ConfigError(
            "config key 'splits': without a 'rest' split, the fractions must add up to exactly 1 "
            f"(they add up to {total}); name one split 'rest' to take what is left"
        )
    return layout


def read_take(head, fraction):
    """What part of the one order config keys 'head' and 'fraction' ask for (None: all of it)."""
    if head is not None and fraction is not None:
        raise ConfigError("config keys 'head' and 'fraction' are both set: give one of them")
    if head is not None:
        return [HEAD, head]
    return None if fraction is None else [FRACTION, fraction]


def split_from_config(name, value):
    size, shards = (value.get("size"), value.get("shards", 1)) if isinstance(value, dict) else (value, 1)
    where = f"config key 'splits', split '{name}'"
    if isinstance(size, bool) or not (size == REST or isinstance(size, (int, float))):
        raise ConfigError(f"{where}: size {size!r} is neither a fraction, a record count nor 'rest'")
    if isinstance(size, float) and not 0 < size <= 1:
        raise ConfigError(f"{where}: the fraction {size} is not in (0, 1]")
    if isinstance(size, int) and size < 0:
        raise ConfigError(f"{where}: the record count {size} is negative")
    return Split(name, size, shards)


def check_output_name(output):
    """An output name that names a file, in a format snakeshuf writes."""
    check_utf8(output, "output", "config key 'output'")
    if output.endswith(("/", os.sep)):
        raise ConfigError(
            f"config key 'output': '{output}' ends with '/', so it names a directory; the output "
            "is a file: add a file name (e.g. 'out/shuffled.txt')"
        )
    suffix = os.path.splitext(output)[1]
    if suffix.lower() in (*UNWRITTEN_SUFFIXES, *OUTPUT_SUFFIXES) and suffix not in OUTPUT_SUFFIXES:
        raise ConfigError(
            f"config key 'output': '{output}' ends in '{suffix}', which snakeshuf does not write "
            "(the file would be plain text under a compressed name): end it in .gz or .zst, "
            "or in no compression suffix for plain text"
        )


def split_name(output):
    """(stem, suffix): 'a/shuffled.jsonl.zst' -> ('a/shuffled', '.jsonl.zst')."""
    stem, last = os.path.splitext(output)
    if last in OUTPUT_SUFFIXES:
        stem, inner = os.path.splitext(stem)
        return stem, inner + last
    return stem, last


def output_paths(output, layout, columns=None):
    """Every output file, in the global order (for aligned inputs, each output
    file's columns in turn): <stem>[.<split>][.<i>-of-<n>][.<column>]<suffix>."""
    stem, suffix = split_name(output)
    if layout == (Split("", REST, 1),) and not columns:
        return [output]
    names = []
    for split in layout:
        name = f"{stem}.{split.name}" if split.name else stem
        if split.shards == 1:
            names.append(name)
        else:
            names += [f"{name}.{i:05d}-of-{split.shards:05d}" for i in range(split.shards)]
    return [f"{name}.{column}{suffix}" if columns else f"{name}{suffix}" for name in names for column in columns or [None]]


def column_name(path):
    """'a.de' and 'a.de.gz' -> 'de'; '' without an extension."""
    suffix = split_name(os.path.basename(path))[1]
    return suffix.split(".")[1] if suffix else ""


def column_names(paths):
    """Names for the columns of aligned inputs: the first group's extensions
    ('a.de', 'a.en' -> de, en) if they tell the columns apart, else 0, 1, ..."""
    names = [column_name(path) for path in paths]
    if len(set(names)) == len(names) and all(names):
        return names
    return [str(c) for c in range(len(paths))]


def exact(fraction):
    """A fraction as the decimal its text says: 0.57 is 57/100, not the binary float just below."""
    return Fraction(repr(fraction))


def split_sizes(layout, total):
    """Records each split asks for ('rest' asks for none: it takes what is left).
    The fraction splits, in order, end where round(total x the fractions so
    far) says (.5 rounds up): each is within one record of its exact share,
    and fractions adding up to 1 cover every record."""
    sizes, share, end = [], Fraction(0), 0
    for split in layout:
        if isinstance(split.size, float):
            share += exact(split.size)
            start, end = end, math.floor(share * total + Fraction(1, 2))
            sizes.append(end - start)
        else:
            sizes.append(0 if split.size == REST else split.size)
    return sizes


def kept_records(take, total):
    """Records a run publishes of the `total` the inputs hold: all (take None),
    the first N of the one order (["head", N]; all if N is more), or the
    first round(p x total) (["fraction", p], .5 rounding up)."""
    if take is None:
        return total
    kind, value = take
    if kind == HEAD:
        return min(value, total)
    return math.floor(exact(value) * total + Fraction(1, 2))


def record_counts(layout, total):
    """Records in each output file, in the global order."""
    sizes = split_sizes(layout, total)
    asked = sum(sizes)
    if asked > total:
        named = ", ".join(f"{s.name}: {n:,}" for s, n in zip(layout, sizes))
        raise LayoutError(
            f"the splits ask for {asked:,} records ({named}) but only {total:,} are published (the "
            "inputs', or what 'head' or 'fraction' keeps of them); make the record counts smaller"
        )
    for i, split in enumerate(layout):
        if split.size == REST:
            sizes[i] += total - asked
    counts = []
    for split, n in zip(layout, sizes):
        counts += [(i + 1) * n // split.shards - i * n // split.shards for i in range(split.shards)]
    return counts


def file_bounds(layout, total):
    """Where each output file starts in the global order (and where the last
    ends: records after that are not published)."""
    return np.concatenate(([0], np.cumsum(record_counts(layout, total), dtype=np.int64)))
