"""Shared helpers: run the real workflow on files a test makes."""

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "bench"))

from make_corpus import generate  # noqa: E402  (bench/ is on the path just above)


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
    """Run snakemake on `config` in `workdir`; return the CompletedProcess."""
    result = subprocess.run(
        snakemake_command(workdir, config, *args, cores=cores),
        capture_output=True, text=True, env=env,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stderr[-6000:]}")
    return result


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


@pytest.fixture
def workdir(tmp_path):
    return tmp_path
