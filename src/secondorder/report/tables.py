"""Tables of our runs next to the papers' published numbers (`results/published/*.csv`).

Reports read only files in `results/`: `eval.json` (EM / F1) and `epochs.jsonl` (time and
memory per epoch) of each run directory. They never train.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from secondorder.runs import read_jsonl

SCALES = ("demo", "paper")  # results/<scale>/<experiment>/<run>/, as experiment_name says
PUBLISHED = "results/published"


def published(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def runs_of(results_root: Path, scale: str, experiment: str) -> list[Path]:
    """Run directories (one per seed) of an experiment that finished an evaluation."""
    base = results_root / scale / experiment
    return sorted(p.parent for p in base.glob("*/eval.json"))


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def run_costs(run_dir: Path) -> dict[str, float]:
    """Mean training time per epoch and the peak memory over epochs of one run."""
    epochs = read_jsonl(run_dir / "epochs.jsonl")
    if not epochs:
        return {}
    memory_key = next((k for k in ("gpu_mem_peak_allocated_gib", "rss_gib") if k in epochs[0]), None)
    costs = {"time_per_epoch_s": statistics.mean(e["time_s"] for e in epochs)}
    if memory_key:
        costs["peak_memory_gib"] = max(e[memory_key] for e in epochs)
        costs["memory_kind"] = memory_key
    return costs


def comparison_table(table: str, results_root: str | Path, scale: str,
                     paper_dir: str | Path = PUBLISHED) -> tuple[list[dict], str]:
    """Rows of ours vs the paper for `table` ("table1" or "table3"), and a Markdown rendering."""
    results_root = Path(results_root)
    rows = []
    for ref in published(Path(paper_dir) / f"{table}.csv"):
        runs = runs_of(results_root, scale, ref["experiment"])
        evals = [json.loads((r / "eval.json").read_text()) for r in runs]
        costs = [run_costs(r) for r in runs]
        rows.append({
            "row": ref["row"], "experiment": ref["experiment"], "runs": len(runs),
            "f1": [e["f1"] for e in evals], "exact": [e["exact"] for e in evals],
            "paper_f1": float(ref["f1"]), "paper_exact": float(ref["exact"]),
            "time_per_epoch_s": [c["time_per_epoch_s"] for c in costs if c],
            "peak_memory_gib": [c["peak_memory_gib"] for c in costs if "peak_memory_gib" in c],
        })
    base_time = rows[0]["time_per_epoch_s"]
    base_mem = rows[0]["peak_memory_gib"]
    lines = [
        f"{table} ({scale} scale; paper numbers from results/published/{table}.csv)", "",
        "| | F1 (ours) | EM (ours) | F1 (paper) | EM (paper) | runs | time/epoch vs first row | peak memory vs first row |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = (f"{statistics.mean(r['time_per_epoch_s']) / statistics.mean(base_time):.2f}×"
             if r["time_per_epoch_s"] and base_time else "—")
        m = (f"{statistics.mean(r['peak_memory_gib']) / statistics.mean(base_mem):.2f}×"
             if r["peak_memory_gib"] and base_mem else "—")
        lines.append(f"| {r['row']} | {_mean_std(r['f1'])} | {_mean_std(r['exact'])} | "
                     f"{r['paper_f1']:.3f} | {r['paper_exact']:.3f} | {r['runs']} | {t} | {m} |")
    if scale == "demo":
        lines += ["", "Embedded scale: a tiny ALBERT from scratch on synthetic data. Compare the "
                  "ordering of the rows, not the values, with the paper."]
    return rows, "\n".join(lines) + "\n"


def write_table(table: str, results_root: str | Path, scale: str,
                paper_dir: str | Path = PUBLISHED) -> Path:
    rows, markdown = comparison_table(table, results_root, scale, paper_dir)
    out = Path(results_root) / scale / f"{table}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    (out.with_suffix(".json")).write_text(json.dumps(rows, indent=2))
    return out
