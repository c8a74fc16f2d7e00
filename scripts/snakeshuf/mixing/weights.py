"""Source weights: how many copies of each record a run publishes.

A source (an entry of config key 'inputs', a sample sheet's 'source' group,
'-' for standard input) has a weight w >= 0. Each of its records appears
floor(w) times, and exactly round(frac(w) x n) of its n records, a uniformly
random subset, once more (a half rounds up; w is read as the decimal written).
Every copy gets a key of its own: copy c of a record is keyed in the stream
copy_stream(stream, c), so copy 0 is the record's key in a run without
weights (a weight of 1 changes nothing), and copies are placed independently.

The extra copies of a fractional weight are chosen by their selection key,
a second bijective mix of the copy's own key: the round(frac(w) x n) smallest
selection keys of the source win. Every record of such a source is written
by the split jobs as a candidate; rule tally_buckets finds each source's
threshold (snakeshuf.mixing.selection), and the bucket jobs publish only the
candidates below it.
"""

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from snakeshuf.errors import ConfigError
from snakeshuf.planning import keys as keylib

# Copy c of stream s is keyed in stream s + c * COPY_STREAM_STRIDE: streams
# are input files (or groups of aligned files), far fewer than 2^32.
COPY_STREAM_STRIDE = 1 << 32
MAX_WEIGHT = 1_000_000  # as config/schema.yaml has it for config key 'weights'
# Selection keys are the copy's key mixed again after this: a bijection, so
# they are as unique as the keys, and unrelated to the order they give.
SELECTION_SALT = np.uint64(0x5E1EC7C0FFEE5EED)


def exact(weight):
    """A weight as the decimal written (0.3 is 3/10, not the float nearest it)."""
    return Fraction(repr(weight)) if isinstance(weight, float) else Fraction(weight)


@dataclass(frozen=True)
class Copies:
    """What a weight asks of each record of its source: `whole` copies, and a
    candidate for one more when `fraction` > 0."""

    whole: int
    fraction: Fraction

    @classmethod
    def of(cls, weight):
        w = exact(weight)
        return cls(math.floor(w), w - math.floor(w))

    @property
    def written(self):
        """Copies the split jobs write of each record (the candidate included)."""
        return self.whole + (self.fraction > 0)

    def chosen(self, records):
        """How many of `records` candidates are published: round(fraction x records), a half up."""
        return math.floor(self.fraction * records + Fraction(1, 2))

    @property
    def weight(self):
        """The weight, exactly (a Fraction: 3 and 3.0 are one weight)."""
        return self.whole + self.fraction


@dataclass(frozen=True)
class Source:
    """A group of inputs weighted together: its name as the user wrote it (an
    entry of 'inputs', a sheet's 'source', the first file of an aligned group)."""

    name: str
    weight: object = 1  # an int or float >= 0, as configured

    @property
    def copies(self):
        return Copies.of(self.weight)


def sources_of(names, configured, listed=None, sheet=None):
    """(the Sources, each entry's source index) of entries whose sources are
    `names` (one per entry, equal names are one source), weighted by config
    key 'weights' (`configured`) or by a sample sheet's 'weight' column
    (`listed`: each entry's weight or None, from `sheet`, its description)."""
    order = list(dict.fromkeys(names))
    weights = dict.fromkeys(order)
    for name, weight in zip(names, listed or [None] * len(names)):
        if weight is not None and weights[name] not in (None, weight):
            raise ConfigError(
                f"{sheet}: source '{name}' is given weights {weights[name]} and {weight} in its 'weight' column: "
                "give every row of a source the same weight"
            )
        if weight is not None and weight > MAX_WEIGHT:
            raise ConfigError(f"{sheet}: source '{name}' has weight {weight}, more than {MAX_WEIGHT:,}")
        weights[name] = weight if weight is not None else weights[name]
    for name, weight in configured.items():
        if name not in weights:
            known = ", ".join(repr(n) for n in order[:5]) + (", ..." if len(order) > 5 else "")
            raise ConfigError(
                f"config key 'weights' names '{name}', which is no source of this run (its sources: {known}); "
                "name an entry of 'inputs' as written, a sample sheet's 'source', or an aligned group's first file"
            )
        if weights[name] is not None:
            raise ConfigError(
                f"source '{name}' is weighted both by config key 'weights' and by the sample sheet's "
                "'weight' column: give its weight in one place"
            )
        weights[name] = weight
    sources = tuple(Source(name, 1 if weights[name] is None else weights[name]) for name in order)
    index = {name: i for i, name in enumerate(order)}
    return sources, [index[name] for name in names]


def parse_weight(text):
    """A sample sheet's weight (the schema has checked it is a number)."""
    return int(text) if text.isdigit() else float(text)


def copy_stream(stream, copy):
    return stream + copy * COPY_STREAM_STRIDE


def selection_keys(keys):
    """The keys that choose among candidates: smaller wins."""
    return keylib.mix64(np.asarray(keys, np.uint64) ^ SELECTION_SALT)
