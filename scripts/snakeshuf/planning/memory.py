"""The memory model: how a job's budget (memory_mb) is shared out.

Every job is one Python process with NumPy and PyArrow loaded, whose first
Arrow kernel call also sets up pools and buffers: BASE_MB covers that. It was
measured at 61 to 98 MB for the same imports: shared libraries that were
written recently sit in the page cache as large folios, and mapping them
counts whole folios as resident. What remains is the usable part:

* a split job holds one read buffer, the same bytes regrouped by key range,
  per-record arrays for at most `batch_records` records, and the index rows
  of the spills written so far (chunks are cut small enough to bound them);
* a shuffle job takes its bucket one key range at a time: it holds a key
  range's bytes plus SHUFFLE_BYTES_PER_RECORD of arrays per record, and
  writes its output in slices of at most OUTPUT_SLICE_BYTES (a longer record
  is written from where it lies, not copied). While it orders and writes one
  key range it reads the next, so the plan makes key ranges half of what
  fits. A key range that would not fit (short records, skew, a few long
  records) is done in several passes over key sub-ranges, never loaded
  whole: each pass is measured exactly from the keys and lengths to fit
  beside one section being read and its copy (shuffle_bucket.KeyRangeInPasses).
"""

import math
import os
from dataclasses import dataclass

# The bytes of one MiB of memory_mb and chunk_mb. Tests shrink it
# (SNAKESHUF_MIB_BYTES=4096) so that a corpus of kilobytes takes many chunks,
# buckets, key ranges and passes; the output never depends on it.
REAL_MIB = 1 << 20
MB = int(os.environ.get("SNAKESHUF_MIB_BYTES", REAL_MIB))
BASE_MB = 128
MIN_MEMORY_MB = 160
# Arrays per record: split keeps ends, keys, key range ids, order and the regrouped
# keys and lengths; shuffle keeps keys, lengths, record offsets, the sort order
# and sort scratch.
SPLIT_BYTES_PER_RECORD = 64
SHUFFLE_BYTES_PER_RECORD = 48
# A run that deduplicates holds more: a split job each record's tag and the
# sort that finds the first of each identity; a bucket job the tags, input
# files and that sort again.
DEDUP_SPLIT_BYTES_PER_RECORD = 64
DEDUP_SHUFFLE_BYTES_PER_RECORD = 48
# A key range read but not yet ordered: its keys and lengths.
SLOT_BYTES_PER_RECORD = 12
# The plan sizes key ranges for records of this many bytes on average; shorter
# records make a shuffle job take extra passes, not extra memory.
PLANNED_RECORD_BYTES = 128
OUTPUT_SLICE_BYTES = 4 * MB
# In a SLURM job, Snakemake's jobstep wrapper and the Snakemake it starts under
# srun to run the rule share the job's memory with the script: together they
# measured 161 MB above the script's own peak on the test cluster (cgroup
# rss+mapped_file of the job, polled). A cluster job asks for memory_mb plus this.
CLUSTER_JOB_OVERHEAD_MB = 256
MULTI_PASS_FACTOR = 2.5
# A split job keeps one index row (11 uint64 columns) per key range per spill until
# it writes the index; they may take this share of its usable memory.
INDEX_ROW_BYTES = 88
MAX_RECORD_BYTES = (1 << 32) - 1
INDEX_SHARE = 1 / 16
# Reading a JSONL field makes Python objects of the whole record: up to ~25x
# its bytes for dense JSON (measured: a 7.9 MB array of {} took 290 MB).
FIELD_PARSE_FACTOR = 64


@dataclass(frozen=True)
class MemoryModel:
    memory_mb: int
    dedup: bool = False  # the run deduplicates (more arrays per record)

    @property
    def split_bytes_per_record(self):
        return SPLIT_BYTES_PER_RECORD + DEDUP_SPLIT_BYTES_PER_RECORD * self.dedup

    @property
    def shuffle_bytes_per_record(self):
        return SHUFFLE_BYTES_PER_RECORD + DEDUP_SHUFFLE_BYTES_PER_RECORD * self.dedup

    @property
    def usable_bytes(self):
        return (self.memory_mb - BASE_MB) * MB

    @property
    def block_bytes(self):
        """A split job's read buffer, which is also the longest record allowed
        (run files store record lengths as uint32)."""
        return min(self.usable_bytes // 4, MAX_RECORD_BYTES)

    @property
    def batch_records(self):
        return max(1, self.usable_bytes // 4 // self.split_bytes_per_record)

    @property
    def shuffle_bytes(self):
        return self.usable_bytes - 2 * OUTPUT_SLICE_BYTES

    @property
    def fitting_bytes(self):
        """The most bytes of average records a shuffle job can hold at once."""
        per_byte = 1 + self.shuffle_bytes_per_record / PLANNED_RECORD_BYTES
        return int(self.shuffle_bytes / per_byte)

    @property
    def key_range_bytes(self):
        """Key range size the plan aims at: two fit, the one being ordered and
        written and the next being read (see read_ahead_need), for records
        down to ~80 bytes on average. Smaller key ranges cost more reads of
        smaller sections: at 2/5 of fitting_bytes, 16 GiB took 24-27 s in
        the shuffle stage against 21.6-21.8 s."""
        return self.fitting_bytes // 2

    def max_chunk_bytes(self, key_ranges):
        """The largest chunk whose index rows fit a split job's share: a spill of
        average records adds one row per key range."""
        spills = int(self.usable_bytes * INDEX_SHARE) // (key_ranges * INDEX_ROW_BYTES)
        return max(1, spills) * self.block_bytes

    def shuffle_need(self, records, nbytes):
        """The bytes a shuffle job holds to order `records` records of `nbytes`."""
        return nbytes + records * self.shuffle_bytes_per_record

    def read_ahead_need(self, records, nbytes):
        """The bytes held while ordering a key range of this size and reading
        the next into its slot (records, their keys and lengths only)."""
        return self.shuffle_need(records, nbytes) + nbytes + records * SLOT_BYTES_PER_RECORD

    def shuffle_passes(self, records, nbytes):
        """Key sub-ranges a shuffle job needs so that each fits in memory."""
        need = self.shuffle_need(records, nbytes)
        if need <= self.shuffle_bytes:
            return 1
        # A pass collects pieces and then joins them (twice its size), and key
        # sub-ranges are only about equal: leave room for both.
        return math.ceil(need * MULTI_PASS_FACTOR / self.shuffle_bytes)

    @property
    def window_bytes(self):
        """The most a split job's decoder may take for its window (an xz
        dictionary, a zstd window): it fills only as far as the stream's data
        goes, so common ones (gzip 32 KiB, xz -6 8 MiB, zstd -3 up to 8 MiB)
        stay within the margin of BASE_MB; a larger one is refused. In real
        MiB: a window is the format's, whatever unit the tests shrink MB to."""
        return (self.memory_mb - BASE_MB) * REAL_MIB // 2

    @staticmethod
    def memory_for_window(window_bytes):
        """The smallest memory_mb whose split job decodes a stream with this window."""
        return max(MIN_MEMORY_MB, BASE_MB + math.ceil(2 * window_bytes / REAL_MIB))

    @property
    def field_record_bytes(self):
        """The longest record whose JSON a split job parses for a dedup field."""
        return self.usable_bytes // FIELD_PARSE_FACTOR

    @property
    def page_bytes(self):
        """What a split job's Parquet reader may hold of pages: half its usable
        memory (the batch it reads and its encoding take the rest)."""
        return self.usable_bytes // 2

    @staticmethod
    def memory_for_pages(page_bytes):
        """The smallest memory_mb whose split job reads pages of this many bytes."""
        return max(MIN_MEMORY_MB, BASE_MB + math.ceil(2 * page_bytes / MB))

    @staticmethod
    def memory_for_field_record(record_bytes):
        return max(MIN_MEMORY_MB, BASE_MB + math.ceil(record_bytes * FIELD_PARSE_FACTOR / MB))

    def memory_for_record(self, record_bytes):
        """The smallest memory_mb whose split buffer holds a record this long."""
        return max(MIN_MEMORY_MB, BASE_MB + math.ceil((record_bytes + 1) * 4 / MB))
