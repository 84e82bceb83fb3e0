"""Rebuild tables, figures and the results' READMEs from the run files in results/ (never
trains).

    python scripts/report.py all --scale demo    # everything below that has its runs
    python scripts/report.py table1 --scale paper
    python scripts/report.py tuning --scale demo  # results/demo/tuning/tuning.{csv,png} (make tune)
    python scripts/report.py ablation             # results/demo/ablation/ (make ablate)
    python scripts/report.py checks               # results/demo/pretrained_*/<name>.md
    python scripts/report.py readmes              # results/<topic>/README.md from the templates
"""

from __future__ import annotations

import argparse
from pathlib import Path

from secondorder.experiments.ablation import load_spec
from secondorder.paths import project_root
from secondorder.report.ablation import write_ablation
from secondorder.report.figures import write_figures
from secondorder.report.readmes import write_readmes
from secondorder.report.tables import SCALES, write_check_table, write_runs_table, write_table
from secondorder.report.tuning import write_tuning

# groups of runs (configs/experiment/<scale>/<group>/) that get one table of their own
CHECKS = ("pretrained_check", "pretrained_confirm")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["table1", "table3", "figures", "tuning", "ablation",
                                         "checks", "readmes", "all"])
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
    demo_runs = root / args.scale / "tiny_albert"  # make demo's run, where one is published
    if args.what == "all" and demo_runs.is_dir():
        print(f"written: {write_runs_table(root, args.scale, 'tiny_albert')}")
    # the pretrained-regime checks: a few settings at one budget each, where they were run
    if args.what in ("checks", "all"):
        for group in CHECKS:
            if (root / args.scale / group).is_dir():
                try:
                    print(f"written: {write_check_table(root, args.scale, group)}")
                except FileNotFoundError as err:  # started, none finished yet
                    print(f"skipped: {err}")
    tuned = (root / args.scale / "tuning").is_dir()
    if args.what == "tuning" or (args.what == "all" and tuned):
        for path in write_tuning(root, args.scale):
            print(f"written: {path}" + (" (and .pdf)" if path.suffix == ".png" else ""))
    spec = load_spec()
    ablated = spec["scale"] == args.scale and (root / args.scale / "ablation").is_dir()
    if args.what == "ablation" or (args.what == "all" and ablated):
        for path in write_ablation(root, spec):
            print(f"written: {path}")
    # the READMEs describe the published results: with another --results, only when asked
    published = root.resolve() == (project_root() / "results").resolve()
    if args.what == "readmes" or (args.what == "all" and published):
        for path in write_readmes(root):
            print(f"written: {path}")


if __name__ == "__main__":
    main()
