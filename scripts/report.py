"""Rebuild tables and figures from run files in results/ (never trains).

    python scripts/report.py all --scale demo        # results/demo/table{1,3}.{md,csv,json}, figures/
    python scripts/report.py table1 --scale paper
    python scripts/report.py tuning --scale demo     # results/demo/tuning/tuning.{csv,png} (make tune)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from secondorder.report.figures import write_figures
from secondorder.report.tables import SCALES, write_table
from secondorder.report.tuning import write_tuning


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["table1", "table3", "figures", "tuning", "all"])
    parser.add_argument("--scale", choices=SCALES, default="demo")
    parser.add_argument("--results", default="results", help="results root (default: results)")
    args = parser.parse_args(argv)
    root = Path(args.results)
    for table in ("table1", "table3"):
        if args.what in (table, "all"):
            path = write_table(table, root, args.scale)
            print(path.read_text())
            print(f"written: {path} (and .csv, .json)")
    if args.what in ("figures", "all"):
        for path in write_figures(root, args.scale):
            print(f"written: {path} (and .pdf)")
    if args.what == "tuning":
        for path in write_tuning(root, args.scale):
            print(path.read_text() if path.suffix == ".csv" else f"written: {path} (and .pdf)")


if __name__ == "__main__":
    main()
