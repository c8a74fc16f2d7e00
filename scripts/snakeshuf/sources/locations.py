"""Where a configured path points. snakeshuf reads files, pipes
(snakeshuf.sources.pipes) and s3:// objects (snakeshuf.sources.objects), and
writes files and s3:// objects (snakeshuf.outputs.destinations); other URLs,
and object storage anywhere but among the inputs and the output, are refused
before anything runs, saying what to do instead."""

import re

from snakeshuf.errors import ConfigError
from snakeshuf.sources import objects

URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/")  # 's3:/b/k' too: a URL mistyped, not a directory 's3:'
STREAM_IT_IN = "stream it in through standard input, e.g. aws s3 cp s3://bucket/in.txt - | snakeshuf - -o out.txt"
INSTEAD_OF_A_URL = {
    "output": "outputs are files or s3:// objects: for another store, write to standard output and upload "
              "that, e.g. snakeshuf IN -o - | gcloud storage cp - gs://bucket/out.txt, or mount the bucket",
    "scratch": "give a local or mounted directory",
    "--report": "write it to a local file and upload that",
    "paired": "paired inputs are read from files only: download them, or mount the bucket",
}
INPUTS_INSTEAD = f"inputs are files, pipes or s3:// objects: {STREAM_IT_IN}, or mount the bucket"


def configured_paths(config):
    """(config key, path) of every path `config` names (or the command's
    options: its report, which is no config key)."""
    paths = [("inputs", p) for p in config.get("inputs") or ()]
    paths += [("paired", p) for group in config.get("paired") or () for p in group]
    paths += [(key, config[key]) for key in ("sample_sheet", "output", "scratch") if config.get(key)]
    return paths + ([("--report", config["report"])] if config.get("report") else [])


def check_no_urls(paths, objects_read=("inputs", "output")):
    """Refuse URLs among `paths` ((config key, path) pairs), but s3:// objects
    under the keys of `objects_read` (snakeshuf.sources.objects): '-o gs://b/o'
    would make a local directory 'gs:' and publish there with exit 0."""
    for key, path in paths:
        if key in objects_read and objects.is_object(path):
            objects.bucket_and_key(path, key)
        elif isinstance(path, str) and URL.match(path):
            named = f"option '{key}'" if key.startswith("-") else f"config key '{key}'"
            if not re.match(URL.pattern + "/", path):
                raise ConfigError(f"{named}: '{path}' looks like a URL with one '/' after its scheme; write "
                                  f"'{path.replace(':/', '://', 1)}', or './{path}' for a local path")
            raise ConfigError(f"{named}: '{path}' is a URL; {INSTEAD_OF_A_URL.get(key, INPUTS_INSTEAD)}")

