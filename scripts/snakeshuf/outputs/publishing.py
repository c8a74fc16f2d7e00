"""Publishing an output set, the last step of a run: gather has joined,
checked, signed and delivered its files (snakeshuf.outputs.destinations) and
listed them in the summary; files are renamed into place, then the scratch
directory is removed and the receipt that rule all asks for is written
(rules/gather.smk).

In a module, rule publish does this after gather (the including workflow's
rules ask for the output files, and Snakemake deletes a job's outputs when it
starts it: gather's would be gone for all of its run).
"""

from snakeshuf.control.resume import remove_leftovers
from snakeshuf.outputs import destinations, provenance
from snakeshuf.outputs.namespace import SUMMARY
from snakeshuf.sources.reading import for_each, location
from snakeshuf.stages.jobs import release_claims


def move_into_place(spec):
    spec.destination.move_into_place(spec)


def finish(spec, receipt, keep_scratch):
    release_claims()
    settle(spec.output + SUMMARY)
    if not keep_scratch:
        remove_leftovers(spec.scratch, spec.outputs, spec.output + SUMMARY)
    open(receipt, "wb").close()


def superseded(spec, old_record):
    """The files of the output set `old_record` (the summary this run's
    replaces) that this run does not publish and the old run can be shown to
    have made: still as it published them (provenance), and none an input.
    A new layout (other shards, splits or compression) thus leaves no file of
    the old one for a reader's glob to find; anything else is left alone."""
    keep = {location(p) for p in spec.outputs} | {location(f.path) for f in spec.files}
    files = {path: entry for path, entry in published_files(old_record).items() if path not in keep}
    still = for_each(lambda path: as_published(path, files[path]), list(files))  # an object's is a request
    return {path: entry for (path, entry), published in zip(files.items(), still) if published}


def published_files(record):
    """{absolute path: summary entry} of the files a summary lists: its output
    set's (named as configured, which may be relative to another directory:
    made_by has them absolute, in the same order) and those it was to remove
    (a gather done again, its first stopped before publishing, still must)."""
    record = record if isinstance(record, dict) else {}
    listed = record.get("outputs") if isinstance(record.get("outputs"), dict) else {}
    made = record.get("made_by") if isinstance(record.get("made_by"), dict) else {}
    absolute = made.get("outputs") if isinstance(made.get("outputs"), list) else []
    if len(absolute) != len(listed):
        absolute = [location(path) for path in listed]
    files = dict(zip(absolute, listed.values()))
    carried = record.get("superseded")
    return {**files, **(carried if isinstance(carried, dict) else {})}


def as_published(path, entry):
    """Whether the file at `path` is the one a summary's `entry` records: a
    regular file of that size and inode (an object of that ETag), carrying
    its token (where it has one)."""
    found = destinations.of(path).found(path)
    return (isinstance(entry, dict) and found is not None and found.regular and entry.get("bytes") == found.size
            and found.identity[0] in entry and not found.replaced_since(entry))


def settle(summary_path):
    """Remove the files the summary at `summary_path` lists as superseded
    that are still as published, then list them as removed instead: each is
    removed once (a later file at one of those names is someone's). Gather
    does it after publishing; a run that finds the output current does it
    for a run killed in between."""
    record = provenance.read_record(summary_path)
    if not record or not record.get("superseded"):
        return
    remove_superseded(record)
    settled = {key: value for key, value in record.items() if key != "superseded"}
    destinations.of(summary_path).write_record(summary_path, {**settled, "removed": sorted(record["superseded"])})


def remove_superseded(record):
    """Remove the files the summary `record` lists as superseded, those still as published."""
    entries = (record or {}).get("superseded") or {}
    entries = entries if isinstance(entries, dict) else {}

    def remove_if_published(path):
        if as_published(path, entries[path]):
            destinations.of(path).remove(path)

    for_each(remove_if_published, list(entries))
