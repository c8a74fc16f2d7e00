"""Choosing the extra copies of fractional weights (snakeshuf.mixing.weights), exactly.

Source s has n candidates, one per record, and publishes the
round(frac(w) x n) whose selection keys are smallest: all below a threshold
t, and of those equal to t (their keys are equal too, so they lie in one key
range) the first `ties` in the order the bucket job reads them (chunk, then
spill: input order). n is known only once every split job is done, so rule
tally_buckets finds t: it counts the candidates' selection keys in BINS
bins, then reads again to sort the bin that holds the last one chosen; the
candidates' keys and lengths are all it reads (12 bytes a record). It also
counts what is chosen in each key range, for the bucket table.
"""

from dataclasses import dataclass

import numpy as np

from snakeshuf.mixing.weights import selection_keys
from snakeshuf.stages import runindex
from snakeshuf.stages.directio import DirectReader, aligned_buffer

BIN_BITS = 12
BIN_SHIFT = np.uint64(64 - BIN_BITS)
STAGING_BYTES = 1 << 20
# Per source: its candidates and their bytes, how many are chosen, the
# threshold and how many equal to it are chosen.
SOURCE_COLUMNS = ("candidates", "candidate_bytes", "chosen", "threshold", "ties")
CANDIDATES, CANDIDATE_BYTES, CHOSEN, THRESHOLD, TIES = range(len(SOURCE_COLUMNS))
# Per key range: what is chosen of its candidates.
RANGE_COLUMNS = ("records", "bytes", "key_sum")


@dataclass
class Selection:
    sources: np.ndarray  # (len(spec.sources), SOURCE_COLUMNS) uint64
    ranges: np.ndarray  # (spec.key_ranges, RANGE_COLUMNS) uint64

    def save(self, handle):
        np.savez(handle, sources=self.sources, ranges=self.ranges)

    @classmethod
    def load(cls, path):
        with np.load(path) as data:
            return cls(data["sources"], data["ranges"])

    def chooser(self):
        return Chooser(self.sources)

    @property
    def unchosen_bytes(self):
        """The bytes of the candidates not chosen (written, not published)."""
        return int(self.sources[:, CANDIDATE_BYTES].sum()) - int(self.ranges[:, 1].sum())


class Chooser:
    """Which of a bucket job's candidates are published, section by section in
    the order it reads them (the ties at a threshold go to the first)."""

    def __init__(self, sources):
        self.thresholds = sources[:, THRESHOLD]
        self.ties_left = sources[:, TIES].astype(np.int64)

    def chosen(self, keys, candidates_of):
        """A mask of the records that are published; `candidates_of`: each
        record's index column (0: no candidate), or one for all."""
        if np.ndim(candidates_of) == 0:  # a section's: no search for the values
            return self.chosen_of(candidates_of - 1, keys) if candidates_of else np.ones(len(keys), bool)
        mask = candidates_of == 0
        for candidate_of in np.unique(candidates_of[~mask]).tolist():
            these = np.flatnonzero(candidates_of == candidate_of)
            mask[these] = self.chosen_of(candidate_of - 1, keys[these])
        return mask

    def chosen_of(self, source, keys):
        """A mask of one source's candidates that are published."""
        u, t = selection_keys(keys), self.thresholds[source]
        mask = u < t
        ties = np.flatnonzero(u == t)
        if len(ties) and self.ties_left[source] > 0:
            taken = ties[: self.ties_left[source]]
            mask[taken] = True
            self.ties_left[source] -= len(taken)
        return mask


def candidate_sections(spec):
    """(run file, index row) of every section of candidates, in the order the bucket jobs read them."""
    for chunk in range(len(spec.chunks)):
        index = runindex.load_index(spec.paths.index(chunk))
        rows = np.asarray(index[np.asarray(index[:, runindex.CANDIDATES_OF]) > 0])
        yield spec.paths.run(chunk), rows


def candidate_keys(spec):
    """(source, key range, keys, lengths) of every section of candidates."""
    from snakeshuf.stages import runfile  # imports Arrow, which gather, loading a Selection, need not

    staging = aligned_buffer(STAGING_BYTES)
    for run, rows in candidate_sections(spec):
        if not len(rows):
            continue
        with DirectReader(run, staging) as reader:
            for row in rows:
                keys, lengths = runfile.read_keys_and_lengths(reader, row)
                yield int(row[runindex.CANDIDATES_OF]) - 1, int(row[runindex.KEY_RANGE]), keys, lengths


def choose(spec, candidates=None):
    """The Selection of a run whose weights have fractions; `candidates`: a
    callable giving the candidates as candidate_keys does (the default),
    called twice."""
    candidates = candidates or (lambda: candidate_keys(spec))
    sources = len(spec.sources)
    # 32 KiB of bins for each source with a fraction only: a sheet may list thousands of sources.
    bins = {s: np.zeros(1 << BIN_BITS, np.int64) for s, source in enumerate(spec.sources) if source.copies.fraction}
    table = np.zeros((sources, len(SOURCE_COLUMNS)), np.uint64)
    for source, _, keys, lengths in candidates():
        bins[source] += np.bincount(selection_keys(keys) >> BIN_SHIFT, minlength=1 << BIN_BITS)
        table[source, CANDIDATE_BYTES] += np.uint64(lengths.sum(dtype=np.uint64))
    boundary = np.zeros(sources, np.int64)  # the bin of the last one chosen
    needed = np.zeros(sources, np.int64)  # how many of that bin are chosen
    for source in bins:
        n = int(bins[source].sum())
        m = spec.sources[source].copies.chosen(n)
        table[source, CANDIDATES], table[source, CHOSEN] = n, m
        counts = np.cumsum(bins[source])
        boundary[source] = int(np.searchsorted(counts, m)) if m else -1
        needed[source] = m - (int(counts[boundary[source] - 1]) if boundary[source] > 0 else 0)
    ranges = np.zeros((spec.key_ranges, len(RANGE_COLUMNS)), np.uint64)
    in_boundary = {source: [] for source in range(sources)}
    for source, key_range, keys, lengths in candidates():
        u = selection_keys(keys)
        bin_of = (u >> BIN_SHIFT).astype(np.int64)
        below = bin_of < boundary[source]
        runindex.add_totals(ranges, key_range, keys[below], lengths[below])
        at = np.flatnonzero(bin_of == boundary[source])
        if len(at):
            in_boundary[source].append((u[at], np.full(len(at), key_range), keys[at], lengths[at]))
    for source, found in in_boundary.items():
        if needed[source]:
            table[source, THRESHOLD], table[source, TIES] = choose_in_bin(found, int(needed[source]), ranges)
    return Selection(table, ranges)


def choose_in_bin(found, needed, ranges):
    """Choose the `needed` smallest of a boundary bin's candidates (in the
    order found where equal), count them into `ranges`; (threshold, ties)."""
    u, key_range, keys, lengths = (np.concatenate(column) for column in zip(*found))
    first = np.argsort(u, kind="stable")[:needed]
    for r in np.unique(key_range[first]):
        taken = first[key_range[first] == r]
        runindex.add_totals(ranges, int(r), keys[taken], lengths[taken])
    threshold = u[first[-1]]
    return int(threshold), int(np.count_nonzero(u[first] == threshold))
