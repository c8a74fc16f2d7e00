"""Shared helpers: run the real workflow on files a test makes."""

import bz2
import csv
import functools
import glob
import gzip
import io
import json
import lzma
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
import zstandard

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "bench"))

from make_corpus import generate  # noqa: E402  (bench/ is on the path just above)
from objectstore import ObjectStore  # noqa: E402
from reference import SEPARATORS, expected_outputs  # noqa: E402


def snakemake_command(workdir, config, *args, cores=2):
    Path(workdir).mkdir(parents=True, exist_ok=True)
    config_path = Path(workdir) / "test-config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))  # splits keep their order
    return [
        str(Path(sys.executable).parent / "snakemake"),
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(config_path),
        "--cores", str(cores),
        *args,
    ]


def run_workflow(workdir, config, *args, cores=2, check=True, env=None):
    """Run snakemake on `config` in `workdir`; return the CompletedProcess.
    A run that finished is checked against the reference model."""
    result = subprocess.run(
        snakemake_command(workdir, config, *args, cores=cores),
        capture_output=True, text=True, env=env,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stderr[-6000:]}")
    if result.returncode == 0 and not PARTIAL_RUN_OPTIONS & set(args):
        assert_published_as_the_reference(workdir, config)
    return result


# Runs that stop before publishing, or publish nothing.
PARTIAL_RUN_OPTIONS = {"--until", "--dry-run", "-n", "--unlock", "--lint"}
# Larger corpora (tests/test_memory.py's 3.2 GB) would need as much memory
# again in the model; those tests check sizes and counts instead.
REFERENCE_LIMIT_BYTES = 1 << 30
# Keys that say how a run is done, never what it publishes. The reference
# model reads none of them and is given the configuration without them, so
# that runs differing only there share its result (tests/reference.py would
# fail on a KeyError, not silently, if it ever read one).
HOW_NOT_WHAT = {"memory_mb", "chunk_mb", "max_chunk_gb", "scratch", "verify_output", "overwrite", "check_disk_space"}
MAGIC = {b"\x1f\x8b": gzip.decompress, b"BZh": bz2.decompress, b"\xfd7zXZ": lzma.decompress, b"\x28\xb5\x2f\xfd": None}


def decompressed(path):
    """The bytes of an output file, decompressed as its name says; a Parquet file's table."""
    if str(path).endswith(".parquet"):
        return pq.ParquetFile(path).read()
    data = Path(path).read_bytes()
    if str(path).endswith(".gz"):
        return gzip.decompress(data)
    if str(path).endswith(".zst"):
        return zstd_decompress(data)
    return data


def zstd_decompress(data):
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()


def plain_content(path):
    """The records of an input file, decompressed as its first bytes say; a Parquet file's table."""
    data = Path(path).read_bytes()
    if data.startswith(b"PAR1") and data.endswith(b"PAR1"):  # as documented: INT96 timestamps in microseconds
        return pq.ParquetFile(path, coerce_int96_timestamp_unit="us").read()  # read_table refuses duplicate names
    for magic, decompress in MAGIC.items():
        if data.startswith(magic):
            return (decompress or zstd_decompress)(data)
    return data


def full_config(config):
    """The test's config over the workflow's defaults."""
    with open(REPO / "config" / "config.yaml") as handle:
        return {**yaml.safe_load(handle), **config}


def input_paths(workdir, config, outputs):
    """(path, source) of the inputs a run of `config` in `workdir` read, in
    order, as the documentation describes them: globs skip the run's own
    files (`outputs` did not exist yet when the run read its inputs); a
    source is the entry of 'inputs' that found it, a sheet's 'source' or
    path, or an aligned group's first file."""
    if config["paired"]:
        return [(os.path.join(workdir, p), group[0]) for group in config["paired"] for p in group]
    if config["sample_sheet"]:
        sheet = os.path.join(workdir, config["sample_sheet"])
        with open(sheet, newline="") as handle:
            tsv = {"delimiter": "\t", "quoting": csv.QUOTE_NONE}  # documented: TSV is read literally
            rows = csv.DictReader(handle, **({} if sheet.lower().endswith(".csv") else tsv))
            return [(os.path.join(workdir, row["path"]), row.get("source") or row["path"]) for row in rows]
    paths = []
    for pattern in config["inputs"]:
        full = os.path.join(workdir, pattern)
        if not glob.has_magic(pattern) or os.path.lexists(full):
            paths.append((full, pattern))
            continue
        matches = sorted(glob.glob(full, recursive=True))
        paths += [(p, pattern) for p in matches if not is_the_runs_own(workdir, config, outputs, p)]
    return paths


def is_the_runs_own(workdir, config, outputs, path):
    """An output, partial, summary, lock or log of this run (its scratch
    directory is gone once it succeeded)."""
    relative = os.path.normpath(os.path.relpath(path, workdir))
    output = os.path.normpath(config["output"])
    own = {*outputs, *(p + ".partial" for p in outputs), output + ".summary.json", output + ".lock"}
    return relative in own or relative.split(os.sep)[0] in ("logs", "benchmarks")


@functools.lru_cache(maxsize=8)
def reference_outputs(inputs, config_json):
    """The reference model's outputs for inputs given as (path, size, mtime, source) tuples."""
    contents = [plain_content(path) for path, _, _, _ in inputs]
    return expected_outputs(json.loads(config_json), contents, sources=[source for *_, source in inputs])


def assert_published_as_the_reference(workdir, config):
    """What a finished run published is exactly what tests/reference.py computes."""
    config = full_config(config)
    summary = json.loads((Path(workdir) / (config["output"] + ".summary.json")).read_text())
    inputs = input_paths(str(workdir), config, [os.path.normpath(p) for p in summary["outputs"]])
    stats = [(p, os.path.getsize(p), os.stat(p).st_mtime_ns, source) for p, source in inputs]
    if sum(size for _, size, _, _ in stats) > REFERENCE_LIMIT_BYTES:
        return
    model_config = {key: value for key, value in config.items() if key not in HOW_NOT_WHAT}
    expected = reference_outputs(tuple(stats), json.dumps(model_config))
    assert list(summary["outputs"]) == list(expected), "the run published other files than the reference"
    for path, data in expected.items():
        assert same_content(decompressed(Path(workdir) / path), data), f"{path} differs from the reference model's"
    assert_summary_counts(summary, expected, config)


def without_dictionaries(table):
    return pa.table([c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns],
                    names=table.column_names)


def same_content(published, expected):
    """Bytes alike, or tables alike: schema (its metadata too), rows and their order."""
    if isinstance(expected, pa.Table):  # a dictionary is how a file stores values: compared as the values
        return published.schema.equals(expected.schema, check_metadata=True) and \
            without_dictionaries(published).equals(without_dictionaries(expected))
    return published == expected


def assert_summary_counts(summary, expected, config):
    """The summary gives each output file's records as the reference has them."""
    sep = SEPARATORS[config["separator"]]
    for path, data in expected.items():
        records = data.num_rows if isinstance(data, pa.Table) else data.count(sep) - config["header_lines"]
        assert summary["outputs"][path]["records"] == records, f"the summary miscounts {path}"


def job_reports(workdir):
    """The JSON report line of every job log under workdir/logs."""
    reports = []
    for path in glob.glob(os.path.join(workdir, "logs", "*", "*", "*.log")):
        with open(path) as handle:
            reports += [json.loads(line) for line in handle if line.startswith("{")]
    return reports


def records_of(path, separator=b"\n"):
    """The records of a file as a list of bytes, each with its separator."""
    data = Path(path).read_bytes()
    parts = data.split(separator)
    records = [part + separator for part in parts[:-1]]
    if parts[-1]:
        records.append(parts[-1] + separator)
    return records


def corpus_file(path, size, seed):
    """Write a generated corpus of `size` bytes to `path`; return its name."""
    with open(path, "wb") as out:
        generate(out, size, seed=seed, fmt="text")
    return str(path)


@pytest.fixture(scope="module")
def store():
    """An S3-API server (moto's) for one test module's object storage."""
    server = ObjectStore()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """`pip install .` into a prefix of its own; the environment that finds it."""
    prefix = tmp_path_factory.mktemp("prefix")
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--prefix", str(prefix), str(REPO)],
        check=True, capture_output=True, cwd=build,
    )
    site = next(prefix.glob("lib/python*/site-packages"))
    return {**os.environ, "PYTHONPATH": str(site), "PATH": f"{prefix / 'bin'}:{os.environ['PATH']}"}


def snakeshuf(workdir, env, *args):
    return subprocess.run(["snakeshuf", *args], cwd=workdir, env=env, capture_output=True, text=True)


SLURM_SEED = 5
SLURM_MEMORY_MB = 160


@pytest.fixture(scope="session")
def slurm_cluster():
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if state.returncode != 0 or not state.stdout.strip():
        message = "no SLURM cluster answers; start one: sudo python tests/slurm/cluster.py start"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def slurm_reference(tmp_path_factory):
    """A ~24 MB corpus and its local shuffle: several buckets, and three
    chunks, whose split jobs run at once, one on each node of the test cluster."""
    root = tmp_path_factory.mktemp("slurm-reference")
    corpus = corpus_file(root / "corpus.txt", 24 << 20, seed=SLURM_SEED)
    config = {"inputs": [corpus], "output": "out.txt", "seed": SLURM_SEED, "memory_mb": SLURM_MEMORY_MB, "chunk_mb": 8}
    run_workflow(root / "local", config)
    return config, (root / "local" / "out.txt").read_bytes()
