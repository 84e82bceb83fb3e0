"""Rebuild tables and figures from run files in results/ (never trains).

    python scripts/report.py table1 --scale demo
    python scripts/report.py all --scale paper
"""

from __future__ import annotations

import argparse
from pathlib import Path

from secondorder.report.figures import loss_figure, memory_figure
from secondorder.report.tables import SCALES, comparison_table, run_costs, runs_of, write_table


def figures(results_root: Path, scale: str) -> list[Path]:
    rows, _ = comparison_table("table1", results_root, scale)
    runs = {r["row"]: runs_of(results_root, scale, r["experiment"]) for r in rows}
    runs = {label: dirs[0] for label, dirs in runs.items() if dirs}
    out_dir = results_root / scale
    made = []
    if runs:
        made.append(loss_figure(runs, out_dir / "figure1_loss.png", title=f"training loss ({scale})"))
        peaks = {label: run_costs(d).get("peak_memory_gib") for label, d in runs.items()}
        peaks = {k: v for k, v in peaks.items() if v is not None}
        if peaks:
            made.append(memory_figure(peaks, out_dir / "figure4_memory.png", title=f"peak memory ({scale})"))
    return made


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["table1", "table3", "figures", "all"])
    parser.add_argument("--scale", choices=SCALES, default="demo")
    parser.add_argument("--results", default="results", help="results root (default: results)")
    args = parser.parse_args(argv)
    root = Path(args.results)
    for table in ("table1", "table3"):
        if args.what in (table, "all"):
            path = write_table(table, root, args.scale)
            print(path.read_text())
            print(f"written: {path}")
    if args.what in ("figures", "all", "table1"):
        for path in figures(root, args.scale):
            print(f"written: {path}")


if __name__ == "__main__":
    main()
