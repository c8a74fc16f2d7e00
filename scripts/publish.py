"""Rule publish, where snakeshuf is a module of another workflow: renames the
output files gather joined into place (snakeshuf.outputs.publishing).

Usage (rules/gather.smk): publish.py --plan PLAN --receipt FILE [--keep-scratch]
"""

import argparse

from snakeshuf.outputs import publishing
from snakeshuf.planning.spec import RunSpec
from snakeshuf.stages import jobs


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--receipt", required=True, help="a file to create once the output is published")
    parser.add_argument("--keep-scratch", action="store_true", help="leave the scratch directory (--notemp)")
    args = parser.parse_args(argv)
    spec = RunSpec.read(args.plan)
    jobs.claim(spec.paths, "gather")  # publishing finishes gather's work: never beside a gather
    publishing.move_into_place(spec)
    publishing.finish(spec, args.receipt, args.keep_scratch)


if __name__ == "__main__":
    jobs.run(main)
