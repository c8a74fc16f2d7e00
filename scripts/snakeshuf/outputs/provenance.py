"""What made an output set, and whether the one on disk is what this run would make.

Snakemake decides "up to date" from mtimes and its own records in the
working directory's .snakemake/; from any other directory mtimes alone
decide. So before any job a run compares its own record with the one gather
wrote into the output's summary: everything that changes the published bytes
(each input's absolute path or URL, size, mtime and an object's ETag, the
seed, the separator, the header, the layout and the output files' names,
which give the compression, and the output format's version) and nothing
that cannot (memory, chunking, cores, executor, scratch, retries). Each
output file's size and inode are recorded too, with the token gather signs
it with: a file replaced, cut or grown since it was published is not
current, even one that reuses the old inode and size (its mtime is not:
Snakemake touches every output after its job).
Stats only: no input or output byte is read.

A file at an output path that no summary lists and that does not carry the
extended attribute gather sets on each output it publishes is someone's
data: the run refuses to replace it unless config key 'overwrite' says so.
"""

import hashlib
import json
import os
from dataclasses import dataclass

from snakeshuf.errors import ConfigError
from snakeshuf.outputs import destinations
from snakeshuf.outputs.destinations import SUMMARY
from snakeshuf.sources import objects
from snakeshuf.sources.reading import for_each, location

# The output format's version: a new one for any change that gives the same
# spec other bytes (tests/test_stable_output.py records the bytes).
# 2: compressed members cut by the one order (every MEMBER_RECORDS records);
# 3: a Parquet row group written from one chunk, its dictionaries its own
FORMAT = 3


def made_by(spec):
    """What defines the bytes `spec` publishes, as plain JSON values."""
    weights = [str(spec.sources[f.source].copies.weight) for f in spec.files]  # 3 and 3.0 alike
    return {
        "format": FORMAT,
        "inputs": [[location(f.path), f.size, f.mtime_ns, *([f.version] if f.version else [])] for f in spec.files],
        "files_per_record": spec.width,
        "seed": spec.seed,
        "separator": spec.separator,
        "header_lines": spec.header_lines,
        "layout": [[s.name, s.size, s.shards] for s in spec.layout],
        **({"take": spec.take} if spec.take else {}),  # absent when all: earlier records stay valid
        **({"weights": weights} if any(w != "1" for w in weights) else {}),
        **({"dedup": spec.dedup.to_json()} if spec.dedup else {}),
        **({"parquet": spec.parquet.to_json()} if spec.parquet else {}),
        "outputs": [location(path) for path in spec.outputs],
    }


def fingerprint(made):
    return hashlib.sha256(json.dumps(made, sort_keys=True).encode()).hexdigest()


def marked_for(found, output):
    """The output set a file or object was published for, or None (a
    fingerprint is taken for `output`'s)."""
    if found is None or found.signature is None:
        return None
    owner = found.signature[0]
    return owner if owner.startswith((os.sep, objects.SCHEME)) else location(output)


def read_record(summary_path):
    """The summary's content, or None if it is missing, unreadable or not a
    summary snakeshuf wrote (each has its version)."""
    record = destinations.of(summary_path).read_record(summary_path)
    return record if isinstance(record, dict) and "version" in record else None


def changed_since_published(outputs, record):
    """Why the output files on disk are not the ones `record` lists, or None
    (paths compared as real paths: a run from elsewhere, or through a link,
    may spell them otherwise)."""
    listed = record.get("outputs") if record else None
    if not isinstance(listed, dict):
        return "its summary does not list these output files"
    listed = {location(path): entry for path, entry in listed.items()}
    if list(listed) != [location(path) for path in outputs]:
        return "its summary does not list these output files"
    for path, found in zip(outputs, found_all(outputs)):
        if found is None:
            return f"'{path}' is missing"
        entry = listed[location(path)]
        if not isinstance(entry, dict) or entry.get("bytes") != found.size:
            return f"'{path}' does not have the size its summary records"
        if not found.regular or found.replaced_since(entry):
            return f"'{path}' was replaced after it was published"
    return None


def found_all(paths):
    """destinations.Found of each path (None: nothing there), looked up at once for objects."""
    return for_each(lambda path: destinations.of(path).found(path), paths)


def output_is_complete(outputs, summary_path):
    """Whether every output file is on disk as its summary records it."""
    return changed_since_published(outputs, read_record(summary_path)) is None


def difference(old, new):
    """The first thing that differs between two records of what made an output, in words."""
    if old.get("format") != new["format"]:
        return f"it was made by another version of snakeshuf's output (format {old.get('format')}, now {new['format']})"
    if old.get("seed") != new["seed"]:
        return f"it was made with seed {old.get('seed')}; this run asks for seed {new['seed']}"
    before = {path: identity for path, *identity in old.get("inputs", [])}  # size, mtime and an object's ETag
    now = {path: identity for path, *identity in new["inputs"]}
    for path, (size, *version) in now.items():
        if path not in before:
            return f"input '{path}' is new"
        if before[path][0] != size:
            return f"input '{path}' changed size ({before[path][0]} -> {size} bytes)"
        if len(before[path]) < len(version) + 1:
            return f"input '{path}' was recorded without its ETag (by an earlier snakeshuf), which a run now checks"
        if before[path][1:] != version:
            return f"input '{path}' was modified"
    for path in before.keys() - now.keys():
        return f"input '{path}' is no longer an input"
    if list(before) != list(now):
        return "the inputs are listed in another order"
    for key in [*new, *(k for k in old if k not in new)]:  # a key only one has: 'take', 'weights', 'dedup'
        if old.get(key) != new.get(key):
            return f"it was made with {key.replace('_', ' ')} {setting(old.get(key))}; this run asks for {setting(new.get(key))}"
    return "it was made by another run"


def setting(value):
    return "none" if value is None else repr(value)


def described_difference(old, new):
    """difference(), or a plain word where the old record is not one it can read."""
    try:
        return difference(old if isinstance(old, dict) else {}, new)
    except (TypeError, ValueError, AttributeError, LookupError):
        return "its summary's record of what made it is unreadable"


@dataclass(frozen=True)
class Verdict:
    current: bool  # the outputs on disk are what this run would publish
    why: str = None  # why the outputs on disk are rebuilt (None: there are none)


def judge(spec, summary, overwrite):
    """What to do with the output set on disk for `spec` (`summary`: the
    summary's path, and what read_record read there); refuses to replace a
    file snakeshuf cannot show it made (unless `overwrite`)."""
    summary_path, record = summary
    existing = {path: found for path, found in zip(spec.outputs, found_all(spec.outputs)) if found}
    at_summary = spec.destination.found(summary_path)
    if not existing and not at_summary:
        return Verdict(False)
    check_replaceable(existing, record, spec.output, overwrite)
    check_summary_replaceable(summary_path, (at_summary, record), existing, spec.output, overwrite)
    if record is None:
        state = "unreadable" if at_summary else "missing"
        return Verdict(False, f"its summary '{summary_path}' is {state}")
    if record.get("fingerprint") != spec.fingerprint:
        return Verdict(False, described_difference(record.get("made_by"), spec.made_by))
    why = changed_since_published(spec.outputs, record)
    return Verdict(why is None, why)


def listed_outputs(record):
    """The output files a summary lists, as absolute paths (a summary older
    than the fingerprint lists them only under 'outputs')."""
    record = record or {}
    made = record.get("made_by") if isinstance(record.get("made_by"), dict) else {}
    outputs = record.get("outputs") if isinstance(record.get("outputs"), dict) else {}
    return {location(p) for p in [*made.get("outputs", []), *outputs]}


def check_summary_replaceable(summary_path, summary, existing, output, overwrite):
    """The file at the summary's name (`summary`: what is there, and the
    record it holds) is replaced only if it is a summary, or its output
    set's files on disk are signed for this output (a summary of its own
    that was damaged), unless `overwrite`; a link or device never."""
    found, record = summary
    if found is None:
        return
    if not found.regular:
        raise ConfigError(
            f"'{summary_path}' exists and is not a regular file (a link, device or pipe), but the run "
            f"writes the summary of output '{output}' there: choose another output path"
        )
    own_set = any(marked_for(f, output) == location(output) for f in existing.values())
    if record is None and not (overwrite or own_set):
        raise ConfigError(
            f"'{summary_path}' exists and is not a summary snakeshuf wrote, but the run writes the summary of "
            f"output '{output}' there: move it away, choose another output name, or set config key "
            "'overwrite' to true (snakeshuf --overwrite)"
        )


def check_replaceable(existing, record, output, overwrite):
    """Each file at an output path ({path: Found}) is this output set's:
    listed in its summary, or signed for it (a file of another set, or none,
    is not replaced unless `overwrite`)."""
    listed, summary_path = listed_outputs(record), output + SUMMARY
    for path, found in existing.items():
        if not found.regular:
            raise ConfigError(
                f"output '{path}' exists and is not a regular file (a link, device or pipe): "
                "snakeshuf replaces only files it made; choose another output path"
            )
        owner = marked_for(found, output)
        if not (overwrite or location(path) in listed or owner in (location(output), None)):
            raise ConfigError(
                f"output '{path}' exists and was published with output '{owner}', another output set: "
                "choose another output name, move it away, or set "
                "config key 'overwrite' to true (snakeshuf --overwrite) to replace it"
            )
        if not (overwrite or location(path) in listed or owner):
            raise ConfigError(
                f"output '{path}' exists, and snakeshuf cannot show that it made it (its summary "
                f"'{summary_path}' does not list it): move it away, or set config key 'overwrite' "
                "to true (snakeshuf --overwrite) to replace it"
            )
