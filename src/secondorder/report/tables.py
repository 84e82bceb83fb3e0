"""Tables I and III: our runs (mean ± std over seeds) beside the paper's published numbers.

Reports read only run files through `secondorder.runs` (eval.json, epochs.jsonl, metrics.jsonl
of complete runs); they never train. Beyond the paper's F1 / EM, each row has the cost as
ratios to AdamW (time per epoch, peak memory) and the training time a run needs to reach
AdamW's final training loss: a second-order method is only better if it wins per second.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import numpy as np

from secondorder.report.paper import published
from secondorder.runs import RunLogs, experiment_runs, read_logs

SCALES = ("demo", "paper")  # results/<scale>/<experiment>/<run>/, as experiment_name says
MEMORY_KEYS = {"gpu_mem_peak_allocated_gib": "GPU max_memory_allocated",
               "rss_gib": "process RSS, interpreter included"}
SMOOTH = 5  # training-loss records in the moving mean that decides "reached"


def run_logs(results_root: str | Path, scale: str, experiment: str) -> list[RunLogs]:
    return [read_logs(d) for d in experiment_runs(Path(results_root), f"{scale}/{experiment}")]


def _handoff_source(logs: RunLogs) -> tuple[RunLogs, float, float] | None:
    """For a hand-off that started from another run's checkpoint (`strategy.init_from`): that
    run's logs and its step and training time at the hand-off."""
    source = logs.init_from
    if source is None or not source.exists():
        return None
    before = read_logs(source)
    first_epochs = int(logs.config["strategy"]["first_epochs"])
    done = [e for e in before.epochs if e["epoch"] <= first_epochs]
    step0 = float(done[-1]["step"]) if done else 0.0
    return before, step0, float(sum(e["time_s"] for e in done))


def loss_curve(logs: RunLogs) -> dict[str, np.ndarray]:
    """Step, epoch, training time and loss of every metrics record of a run; a hand-off run is
    joined to the records of the run it started from, so its curve and time start at 0."""
    records = list(logs.metrics)
    joined = _handoff_source(logs)
    if joined is not None:
        before, step0, time0 = joined
        records = [r for r in before.metrics if r["step"] <= step0] + [
            {**r, "step": r["step"] + step0, "train_time_s": r.get("train_time_s", math.nan) + time0}
            for r in records]
    return {
        "step": np.array([r["step"] for r in records], dtype=float),
        "epoch": np.array([r["epoch"] for r in records], dtype=float),
        "time": np.array([r.get("train_time_s", math.nan) for r in records], dtype=float),
        "loss": np.array([float(r["loss"]) for r in records], dtype=float),
    }


def eval_curve(logs: RunLogs) -> dict[str, np.ndarray]:
    """Training time and dev F1 of every evaluation, joined like :func:`loss_curve`."""
    records = list(logs.evals)
    joined = _handoff_source(logs)
    if joined is not None:
        before, step0, time0 = joined
        records = [e for e in before.evals if e["step"] <= step0] + [
            {**e, "train_time_s": e["train_time_s"] + time0} for e in records]
    return {"time": np.array([e["train_time_s"] for e in records], dtype=float),
            "f1": np.array([e["f1"] for e in records], dtype=float)}


def smoothed(values: np.ndarray, window: int = SMOOTH) -> np.ndarray:
    """Trailing moving mean (shorter at the start), same length as `values`."""
    out = np.cumsum(values, dtype=float)
    out[window:] = out[window:] - out[:-window]
    return out / np.minimum(np.arange(1, len(values) + 1), window)


def time_to_loss(curve: dict[str, np.ndarray], target: float) -> float | None:
    """Training seconds until the smoothed training loss first reaches `target` (None: never)."""
    hit = np.nonzero(smoothed(curve["loss"]) <= target)[0]
    return float(curve["time"][hit[0]]) if hit.size else None


def run_costs(logs: RunLogs) -> dict[str, float | str]:
    """Training time per epoch (mean) and per step (the median over epochs of epoch time / its
    steps: robust to one epoch slowed by another job on a shared machine, and comparable
    between runs whose epochs differ in length), and the peak memory over the epochs."""
    if not logs.epochs:
        return {}
    costs: dict[str, float | str] = {
        "time_per_epoch_s": statistics.mean(e["time_s"] for e in logs.epochs),
        "time_per_step_s": statistics.median(e["time_s"] / e["steps"] for e in logs.epochs)}
    key = next((k for k in MEMORY_KEYS if k in logs.epochs[0]), None)
    if key:
        costs["peak_memory_gib"] = max(e[key] for e in logs.epochs)
        costs["memory_kind"] = key
    return costs


def _mean_std(values: list[float], fmt: str = ".2f") -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:{fmt}}"
    return f"{statistics.mean(values):{fmt}} ± {statistics.stdev(values):{fmt}}"


def _paper(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _ratio(values: list[float], base: list[float]) -> str:
    if not values or not base:
        return "—"
    return f"{statistics.mean(values) / statistics.mean(base):.2f}×"


def comparison_table(table: str, results_root: str | Path, scale: str,
                     paper_dir: str | Path | None = None) -> tuple[list[dict], str]:
    """Rows of ours vs the paper for `table` ("table1" or "table3"), and a Markdown rendering.

    The first row (AdamW) is the baseline of the ratios and of the loss target.
    """
    rows = []
    for ref in published(table, paper_dir, scale):
        logs = run_logs(results_root, scale, ref["experiment"])
        costs = [run_costs(lg) for lg in logs]
        rows.append({
            "row": ref["row"], "experiment": ref["experiment"], "runs": len(logs),
            "f1": [lg.final["f1"] for lg in logs], "exact": [lg.final["exact"] for lg in logs],
            "HasAns_f1": [lg.final.get("HasAns_f1") for lg in logs],
            "NoAns_f1": [lg.final.get("NoAns_f1") for lg in logs],
            # the paper has no number for some rows (AdaSub: it could not train it)
            "paper_f1": float(ref["f1"]) if ref["f1"] else None,
            "paper_exact": float(ref["exact"]) if ref["exact"] else None,
            "time_per_epoch_s": [c["time_per_epoch_s"] for c in costs if c],
            "time_per_step_s": [c["time_per_step_s"] for c in costs if c],
            "peak_memory_gib": [c["peak_memory_gib"] for c in costs if "peak_memory_gib" in c],
            "memory_kind": next((c["memory_kind"] for c in costs if "memory_kind" in c), None),
            "curves": [loss_curve(lg) for lg in logs],
        })
    base = rows[0]
    # the same moving mean as `time_to_loss`, so that each AdamW run reaches its own final loss
    finals = [float(smoothed(c["loss"])[-1]) for c in base["curves"] if c["loss"].size]
    target = max(finals) if finals else None  # the loss every AdamW run reaches
    for r in rows:
        times = [time_to_loss(c, target) for c in r["curves"]] if target is not None else []
        r["loss_target"] = target
        r["time_to_target_s"] = times
        del r["curves"]
    kind = MEMORY_KEYS.get(base["memory_kind"] or "", "peak memory")
    lines = [
        f"{table} ({scale} scale): ours (mean ± std over runs) beside the paper "
        f"(results/published/{table}.csv)", "",
        "| | F1 (ours) | EM (ours) | HasAns F1 | NoAns F1 | F1 (paper) | EM (paper) | runs "
        "| time/step vs AdamW | peak memory vs AdamW | time to AdamW's final loss |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        reached = [t for t in r["time_to_target_s"] if t is not None]
        if not r["runs"] or target is None:
            to_target = "—"
        elif len(reached) < r["runs"]:
            to_target = f"not reached ({r['runs'] - len(reached)} of {r['runs']} runs)"
        else:
            to_target = f"{statistics.mean(reached):.0f} s"
        lines.append(
            f"| {r['row']} | {_mean_std(r['f1'])} | {_mean_std(r['exact'])} | "
            f"{_mean_std([v for v in r['HasAns_f1'] if v is not None])} | "
            f"{_mean_std([v for v in r['NoAns_f1'] if v is not None])} | "
            f"{_paper(r['paper_f1'])} | {_paper(r['paper_exact'])} | {r['runs']} | "
            f"{_ratio(r['time_per_step_s'], base['time_per_step_s'])} | "
            f"{_ratio(r['peak_memory_gib'], base['peak_memory_gib'])} | {to_target} |")
    lines += ["", f"Memory: {kind}. Loss target: AdamW's final training loss "
              f"({'—' if target is None else f'{target:.4f}'}: the mean of its last {SMOOTH} "
              f"logged losses, the highest over its runs), reached when the moving mean of "
              f"{SMOOTH} logged losses falls to it; "
              "time is training time (evaluation excluded), a hand-off's including its AdamW "
              "epochs. Time/step: the median over a run's epochs of epoch time / steps, "
              "averaged over runs."]
    if scale == "demo":
        lines += ["", "Embedded scale (see the README): compare the ordering and the gaps "
                  "between rows with the paper, not the values."]
    return rows, "\n".join(lines) + "\n"


def write_table(table: str, results_root: str | Path, scale: str,
                paper_dir: str | Path | None = None) -> Path:
    """`results/<scale>/<table>.md`, `.csv` and `.json`; returns the Markdown path."""
    rows, markdown = comparison_table(table, results_root, scale, paper_dir)
    out = Path(results_root) / scale / f"{table}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    header = ["row", "experiment", "runs", "f1_mean", "f1_std", "exact_mean", "exact_std",
              "paper_f1", "paper_exact", "time_per_epoch_s", "time_per_step_s",
              "peak_memory_gib", "time_to_target_s"]

    def stat(values, fn):
        values = [v for v in values if v is not None]
        if not values or (fn is statistics.stdev and len(values) < 2):
            return ""
        return f"{fn(values):.4f}"

    with out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in rows:
            writer.writerow([
                r["row"], r["experiment"], r["runs"], stat(r["f1"], statistics.mean),
                stat(r["f1"], statistics.stdev), stat(r["exact"], statistics.mean),
                stat(r["exact"], statistics.stdev),
                "" if r["paper_f1"] is None else r["paper_f1"],
                "" if r["paper_exact"] is None else r["paper_exact"],
                stat(r["time_per_epoch_s"], statistics.mean),
                stat(r["time_per_step_s"], statistics.mean),
                stat(r["peak_memory_gib"], statistics.mean),
                stat(r["time_to_target_s"], statistics.mean)])
    return out


def runs_table(results_root: str | Path, scale: str, experiment: str) -> str:
    """One row per complete run of `experiment` (e.g. `make demo`'s tiny_albert): EM, F1 with
    its HasAns / NoAns parts, best F1 (tuned no-answer threshold), dev F1 after each epoch and
    training time; the all-no-answer baseline below. Markdown."""
    runs = run_logs(results_root, scale, experiment)
    if not runs:
        raise FileNotFoundError(f"no complete run in {Path(results_root) / scale / experiment}")
    lines = [f"`{scale}/{experiment}` ({len(runs)} run{'s' * (len(runs) > 1)}; from each "
             "run's eval.json and evals.jsonl)", "",
             "| run | EM | F1 | HasAns F1 | NoAns F1 | best F1 | F1 after each epoch | "
             "training time |", "|---|---|---|---|---|---|---|---|"]
    for logs in runs:
        f = logs.final
        by_epoch = ", ".join(f"{e['f1']:.2f}" for e in logs.evals
                             if float(e.get("epoch", 0)).is_integer())
        lines.append(f"| {logs.dir.name} | {f['exact']:.2f} | {f['f1']:.2f} | "
                     f"{f['HasAns_f1']:.2f} | {f['NoAns_f1']:.2f} | {f['best_f1']:.2f} | "
                     f"{by_epoch} | "
                     f"{f['train_time_s']:.0f} s |")
    lines += ["", null_baseline(runs[0].final)]
    return "\n".join(lines) + "\n"


def null_f1(scores: dict) -> float | None:
    """The F1 (= EM) of answering nothing on the dev set an evaluation record was scored on: the
    share of unanswerable questions, in percent (None: the record has no question counts)."""
    if not scores.get("total") or scores.get("NoAns_total") is None:
        return None
    return 100.0 * scores["NoAns_total"] / scores["total"]


def null_baseline(final: dict) -> str:
    """The all-no-answer EM = F1 of the dev set a run was scored on (its eval.json `final`)."""
    base = null_f1(final)
    return f"All-no-answer baseline: EM = F1 = {base:.2f} ({final['total']} dev questions)."


LOSS_WINDOW = 25  # steps of logged training loss averaged at each evaluation of check_table


def check_table(results_root: str | Path, scale: str, group: str) -> str:
    """One row per complete run under `<scale>/<group>/*/` (a check of a few settings at one
    budget, e.g. demo/pretrained_check): dev F1 and the training loss at every evaluation, the
    final HasAns / NoAns F1, and the mean time per step. Markdown."""
    root = Path(results_root) / scale / group
    runs = [read_logs(d) for e in sorted(root.iterdir()) if e.is_dir()
            for d in experiment_runs(Path(results_root), f"{scale}/{group}/{e.name}")]
    if not runs:
        raise FileNotFoundError(f"no complete run under {root}")
    steps = sorted({int(e["step"]) for logs in runs for e in logs.evals})
    lines = [f"`{scale}/{group}/*` ({len(runs)} run{'s' * (len(runs) > 1)}; from each run's "
             "evals.jsonl, eval.json, metrics.jsonl and epochs.jsonl)", "",
             "| run | " + " | ".join(f"step {s}: F1 / loss" for s in steps)
             + " | steps | HasAns F1 | NoAns F1 | s/step |",
             "|---|" + "---|" * (len(steps) + 4)]
    for logs in runs:
        by_step = {int(e["step"]): e["f1"] for e in logs.evals}
        cells = []
        for s in steps:
            # the mean of the losses logged over the LOSS_WINDOW steps up to the evaluation
            losses = [m["loss"] for m in logs.metrics if s - LOSS_WINDOW < int(m["step"]) <= s]
            cells.append(f"{by_step[s]:.2f} / {np.mean(losses):.2f}" if s in by_step and losses
                         else "—")
        train_s = sum(e["time_s"] for e in logs.epochs)
        lines.append(f"| {logs.dir.parent.name} | {' | '.join(cells)} | {logs.final['step']} | "
                     f"{logs.final['HasAns_f1']:.2f} | {logs.final['NoAns_f1']:.2f} | "
                     f"{train_s / logs.final['step']:.2f} |")
    lines += ["", f"{null_baseline(runs[0].final)} Loss: the mean of the training losses "
              f"logged over the {LOSS_WINDOW} steps up to the evaluation."]
    return "\n".join(lines) + "\n"


def write_check_table(results_root: str | Path, scale: str, group: str) -> Path:
    out = Path(results_root) / scale / group / f"{Path(group).name}.md"
    out.write_text(check_table(results_root, scale, group))
    return out


def write_runs_table(results_root: str | Path, scale: str, experiment: str) -> Path:
    out = Path(results_root) / scale / f"{experiment.replace('/', '_')}.md"
    out.write_text(runs_table(results_root, scale, experiment))
    return out
