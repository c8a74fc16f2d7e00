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
import secrets
import stat
from dataclasses import dataclass

from snakeshuf.errors import ConfigError
from snakeshuf.sources.reading import location

# The output format's version: a new one for any change that gives the same
# spec other bytes (tests/test_stable_output.py records the bytes).
# 2: compressed members cut by the one order (every MEMBER_RECORDS records);
# 3: a Parquet row group written from one chunk, its dictionaries its own
FORMAT = 3
MADE_BY = "user.snakeshuf.made-by"  # the extended attribute on every published file: its output set
SUMMARY = ".summary.json"  # beside the configured output


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
        "outputs": [os.path.realpath(path) for path in spec.outputs],
    }


def fingerprint(made):
    return hashlib.sha256(json.dumps(made, sort_keys=True).encode()).hexdigest()


def mark(path, output):
    """Sign a file gather is about to publish with its output set (the
    configured output's absolute path) and a token of its own, which the
    summary records. Returns the token, or None on a filesystem without
    extended attributes (there the summary's record alone decides)."""
    token = secrets.token_hex(8)
    try:
        os.setxattr(path, MADE_BY, f"{os.path.realpath(output)}\0{token}".encode())
    except OSError:
        return None
    return token


def signature(path):
    """A file's signature as (output set, token); None where it has none.
    Signatures from before tokens have no token, and from before sets were
    signed, a fingerprint in place of the set."""
    try:
        value = os.getxattr(path, MADE_BY).decode(errors="replace")
    except OSError:
        return None
    owner, _, token = value.partition("\0")
    return owner, token or None


def marked_for(path, output):
    """The output set a file was published for, or None (a fingerprint is
    taken for `output`'s)."""
    signed = signature(path)
    if signed is None:
        return None
    return signed[0] if signed[0].startswith(os.sep) else os.path.realpath(output)


def read_record(summary_path):
    """The summary's content, or None if it is missing, unreadable or not a
    summary snakeshuf wrote (each has its version)."""
    try:
        with open(summary_path) as handle:
            record = json.load(handle)
        return record if isinstance(record, dict) and "version" in record else None
    except (OSError, ValueError):
        return None


def changed_since_published(outputs, record):
    """Why the output files on disk are not the ones `record` lists, or None
    (paths compared as real paths: a run from elsewhere, or through a link,
    may spell them otherwise)."""
    listed = record.get("outputs") if record else None
    if not isinstance(listed, dict):
        return "its summary does not list these output files"
    listed = {os.path.realpath(path): entry for path, entry in listed.items()}
    if list(listed) != [os.path.realpath(path) for path in outputs]:
        return "its summary does not list these output files"
    for path in outputs:
        try:
            info = os.stat(path)
        except OSError:
            return f"'{path}' is missing"
        entry = listed[os.path.realpath(path)]
        if not isinstance(entry, dict) or entry.get("bytes") != info.st_size:
            return f"'{path}' does not have the size its summary records"
        if entry.get("inode", info.st_ino) != info.st_ino or not signed_as(path, entry):
            return f"'{path}' was replaced after it was published"
    return None


def signed_as(path, entry):
    """Whether a file still carries the token its summary entry records."""
    if "token" not in entry:
        return True
    signed = signature(path)
    return signed is not None and signed[1] == entry["token"]


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


def judge(spec, summary_path, overwrite):
    """What to do with the output set on disk for `spec`; refuses to replace
    a file snakeshuf cannot show it made (unless `overwrite`)."""
    existing = [path for path in spec.outputs if os.path.lexists(path)]
    record = read_record(summary_path)
    if not existing and not os.path.lexists(summary_path):
        return Verdict(False)
    check_replaceable(existing, record, spec.output, overwrite)
    check_summary_replaceable(summary_path, record, existing, spec.output, overwrite)
    if record is None:
        state = "unreadable" if os.path.lexists(summary_path) else "missing"
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
    return {os.path.realpath(p) for p in [*made.get("outputs", []), *outputs]}


def check_summary_replaceable(summary_path, record, existing, output, overwrite):
    """The file at the summary's name is replaced only if it is a summary, or
    its output set's files on disk are signed for this output (a summary of
    its own that was damaged), unless `overwrite`; a link or device never."""
    if not os.path.lexists(summary_path):
        return
    if not stat.S_ISREG(os.lstat(summary_path).st_mode):
        raise ConfigError(
            f"'{summary_path}' exists and is not a regular file (a link, device or pipe), but the run "
            f"writes the summary of output '{output}' there: choose another output path"
        )
    own_set = any(marked_for(path, output) == os.path.realpath(output) for path in existing)
    if record is None and not (overwrite or own_set):
        raise ConfigError(
            f"'{summary_path}' exists and is not a summary snakeshuf wrote, but the run writes the summary of "
            f"output '{output}' there: move it away, choose another output name, or set config key "
            "'overwrite' to true (snakeshuf --overwrite)"
        )


def check_replaceable(existing, record, output, overwrite):
    """Each existing file at an output path is this output set's: listed in
    its summary, or signed for it (a file of another set, or none, is not
    replaced unless `overwrite`)."""
    listed, summary_path = listed_outputs(record), output + SUMMARY
    for path in existing:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                f"output '{path}' exists and is not a regular file (a link, device or pipe): "
                "snakeshuf replaces only files it made; choose another output path"
            )
        owner = marked_for(path, output)
        if not (overwrite or os.path.realpath(path) in listed or owner in (os.path.realpath(output), None)):
            raise ConfigError(
                f"output '{path}' exists and was published with output '{owner}', another output set: "
                "choose another output name, move it away, or set "
                "config key 'overwrite' to true (snakeshuf --overwrite) to replace it"
            )
        if not (overwrite or os.path.realpath(path) in listed or owner):
            raise ConfigError(
                f"output '{path}' exists, and snakeshuf cannot show that it made it (its summary "
                f"'{summary_path}' does not list it): move it away, or set config key 'overwrite' "
                "to true (snakeshuf --overwrite) to replace it"
            )
