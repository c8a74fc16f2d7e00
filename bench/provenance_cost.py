#!/usr/bin/env python3
"""What judging the output on disk adds to a run's start: snakeshuf.outputs.provenance
on N inputs, against a current output whose summary lists them (the case
that reads the most: every output stat'd, the whole record compared), best of
several. It is done once, in the main process, before any job.

    python bench/provenance_cost.py [--inputs 10000] [--repeat 5]
"""

import argparse
import json
import sys
import tempfile
import timeit
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from snakeshuf.outputs import provenance  # noqa: E402
from snakeshuf.outputs.layout import REST, Split, output_paths  # noqa: E402
from snakeshuf.planning.plan import InputFile  # noqa: E402
from snakeshuf.planning.spec import RunSpec  # noqa: E402


def spec_over(directory, count):
    files = []
    for i in range(count):
        path = directory / f"part-{i:05d}.jsonl"
        path.write_bytes(b'{"text": "x"}\n')
        info = path.stat()
        files.append(InputFile(i, str(path), info.st_size, None, info.st_mtime_ns))
    layout = (Split("train", REST, 64), Split("valid", 1000, 1))
    output = str(directory / "out" / "mix.jsonl.zst")
    return RunSpec(tuple(files), (), 1, 1, 1, 7, 10, 0, 0, layout, None, output, str(directory / "scratch"))


def publish(spec):
    """Output files and the summary a run of `spec` leaves."""
    Path(spec.output).parent.mkdir()
    stats = []
    for path in output_paths(spec.output, spec.layout):
        Path(path).write_bytes(b"")
        stats.append(Path(path).stat())
    record = {
        "outputs": {p: {"bytes": s.st_size, "inode": s.st_ino} for p, s in zip(spec.outputs, stats)},
        "fingerprint": spec.fingerprint,
        "made_by": spec.made_by,
    }
    summary = spec.output + ".summary.json"
    Path(summary).write_text(json.dumps(record))
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = spec_over(Path(tmp), args.inputs)
        summary = publish(spec)
        assert provenance.judge(spec, summary, overwrite=False).current
        # A fresh spec each time: a spec computes what made it once, as a run does.
        best = min(timeit.repeat(lambda: provenance.judge(replace(spec), summary, False), number=1, repeat=args.repeat))
    print(f"{args.inputs} inputs, {len(spec.outputs)} output files: judged in {best * 1000:.1f} ms (best of {args.repeat})")


if __name__ == "__main__":
    main()
