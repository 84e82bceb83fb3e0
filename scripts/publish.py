"""Publish a finished run: copy its summaries (config, logs, final scores) from outputs/ into
results/, where `make report` reads the published runs and git keeps them.

    python scripts/publish.py outputs/demo/tiny_albert/adamw-seed42
    python scripts/publish.py outputs/demo/tiny_albert/adamw-seed42 --overwrite
"""

from __future__ import annotations

import argparse
import sys

from secondorder.runs import RunError, publish_run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the run's folder (outputs/<experiment>/<run>)")
    parser.add_argument("--results", default="results", help="results root (default: results)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a run already published there")
    args = parser.parse_args(argv)
    try:
        target = publish_run(args.run, args.results, overwrite=args.overwrite)
    except RunError as err:
        print(f"publish: {err}", file=sys.stderr)
        return 2
    print(f"published: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
