"""`make ablate`: one row per changed factor of the failing AdaHessian setting, and a figure.

Reads the complete runs of the experiments that `configs/ablation.yaml` names (the baseline,
the screen at the Table I budget, the confirmation at 10 epochs) and writes
`results/<scale>/ablation/ablation.{md,csv}`, `telemetry.csv` (the last curvature-telemetry
record of every block, averaged over a row's runs), `ablation.png`: dev F1 and final
training loss per setting, against the all-no-answer F1 and AdamW, and `confirmation.png`: the
10-epoch runs' dev F1 after every epoch and training loss, each seed and their mean.
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

import numpy as np

from secondorder.report.plotting import save_figure
from secondorder.report.tables import (
    _mean_std,
    loss_curve,
    null_f1,
    run_logs,
    smoothed,
    time_to_loss,
)
from secondorder.runs import RunLogs, read_jsonl

ANSWERS_MARGIN = 1.0  # F1 points above the all-no-answer F1 that count as "answers"
SUMMARY_BLOCKS = ("qa_outputs", "word_embeddings")  # blocks the Markdown table names


def _final_loss(logs: RunLogs) -> float | None:
    losses = loss_curve(logs)["loss"]
    return float(smoothed(losses)[-1]) if losses.size else None


def _telemetry(logs: list[RunLogs]) -> dict[str, float]:
    """The curvature record halfway through each run (the learning rate decays to 0 at its end,
    so the last record's update sizes say nothing), averaged over the runs (`block/stat`)."""
    last = []
    for lg in logs:
        records = read_jsonl(lg.dir / "curvature.jsonl")
        if records:
            half = records[-1]["step"] / 2
            last.append(min(records, key=lambda r: abs(r["step"] - half)))
    keys = sorted({k for r in last for k in r if "/" in k})
    return {k: statistics.mean(r[k] for r in last if k in r and r[k] is not None) for k in keys
            if any(k in r and r[k] is not None for r in last)}


def _above_null(f1: float, null: float) -> bool:
    """An F1 that counts as answering: more than ANSWERS_MARGIN above the all-no-answer F1."""
    return f1 > null + ANSWERS_MARGIN


def _answers_from(logs: RunLogs) -> float | None:
    """The first epoch after which the run's dev F1 is ANSWERS_MARGIN above the all-no-answer F1
    (None: no evaluation is)."""
    for r in logs.evals:
        if "epoch" in r and (null := null_f1(r)) is not None and _above_null(r["f1"], null):
            return r["epoch"]
    return None


def _row(entry: dict, part: str, budget: str, results_root: Path, scale: str,
         target: float | None) -> dict:
    logs = run_logs(results_root, scale, entry["experiment"])
    finals = [lg.final for lg in logs]
    curves = [loss_curve(lg) for lg in logs]
    telemetry = _telemetry(logs)
    medians = [v for k, v in telemetry.items() if k.endswith("/denom_median") and v > 0]
    trained = {f"{f['epoch']:g} epoch" + ("s" if f["epoch"] != 1 else "") for f in finals
               if "epoch" in f}
    return {
        "part": part, "factor": entry["factor"], "setting": entry["setting"],
        "budget": ", ".join(sorted(trained)) if trained else budget,  # as trained, else planned
        "experiment": entry["experiment"], "runs": len(logs), "logs": logs,
        "f1": [f["f1"] for f in finals], "exact": [f["exact"] for f in finals],
        "HasAns_f1": [f["HasAns_f1"] for f in finals if f.get("HasAns_f1") is not None],
        "NoAns_f1": [f["NoAns_f1"] for f in finals if f.get("NoAns_f1") is not None],
        # the F1 of answering nothing: the share of unanswerable questions
        "null_f1": [v for f in finals if (v := null_f1(f)) is not None],
        "final_loss": [v for lg in logs if (v := _final_loss(lg)) is not None],
        "answers_from_epoch": [_answers_from(lg) for lg in logs],
        "time_to_target_s": [time_to_loss(c, target) for c in curves] if target else [],
        "time_per_step_s": [statistics.median(e["time_s"] / e["steps"] for e in lg.epochs)
                            for lg in logs if lg.epochs],
        # the global gradient norm before clipping, over the run (runs since it is logged)
        "grad_norm": [statistics.mean(norms) for lg in logs
                      if (norms := [r["grad_norm"] for r in lg.metrics if r.get("grad_norm")])],
        "denom_spread": max(medians) / min(medians) if medians else None,
        "telemetry": telemetry,
    }


def ablation_rows(results_root: str | Path, spec: dict,
                  reference: list[RunLogs]) -> tuple[list[dict], float | None]:
    """(rows, AdamW's final-loss target): the baseline, then the screen, then the confirmation
    (each row's "part": "baseline", "screen" or "confirm"). `reference`: the runs of the spec's
    reference (AdamW) experiment."""
    root, scale = Path(results_root), spec["scale"]
    losses = [v for lg in reference if (v := _final_loss(lg)) is not None]
    target = max(losses) if losses else None  # the loss every AdamW run reaches
    baseline = {"factor": "baseline", "setting": "Table I setting (fails)",
                "experiment": spec["baseline"]}
    rows = [_row(baseline, "baseline", "3 epochs", root, scale, target)]
    rows += [_row(e, "screen", "3 epochs", root, scale, target) for e in spec["screen"]]
    rows += [_row(e, "confirm", "10 epochs", root, scale, target)
             for e in spec.get("confirm") or []]
    return rows, target


def answers(row: dict) -> bool:
    """Every run of the row beats the all-no-answer F1 by ANSWERS_MARGIN points."""
    return bool(row["f1"]) and all(_above_null(f, n)
                                   for f, n in zip(row["f1"], row["null_f1"], strict=False))


def _attention_update(telemetry: dict[str, float]) -> str:
    """||update|| / ||weights|| of the attention scores' weights (query, key), where AdaHessian
    steps them ('—': another optimizer does)."""
    values = [telemetry[f"{b}/update_ratio"] for b in ("query", "key")
              if f"{b}/update_ratio" in telemetry]
    return "—" if not values else " / ".join(f"{v:.2g}" for v in values)


def _fmt(value: float | None, fmt: str = ".3g", unit: str = "") -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:{fmt}}{unit}"


def _epochs(values: list[float | None]) -> str:
    return "—" if not values else ", ".join("never" if v is None else f"{v:g}" for v in values)


def _to_target(row: dict) -> str:
    reached = [t for t in row["time_to_target_s"] if t is not None]
    if not row["runs"]:
        return "—"
    if len(reached) < row["runs"]:
        return f"not reached ({row['runs'] - len(reached)} of {row['runs']})"
    return f"{statistics.mean(reached):.0f} s"


def ablation_markdown(rows: list[dict], target: float | None, scale: str) -> str:
    lines = [
        f"make ablate ({scale} scale): AdaHessian with one factor changed from the failing "
        "Table I setting (mean ± std over runs)", "",
        "| factor | setting | budget | runs | F1 | HasAns F1 | NoAns F1 | answers "
        "| answers from epoch | final loss | time to AdamW's loss | time/step | gradient norm | denominator spread "
        "| query, key update/weight | QA head update/weight | eps share, word embeddings |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["telemetry"]
        lines.append(
            f"| {r['factor']} | {r['setting'].replace('|', chr(92) + '|')} | {r['budget']} | "
            f"{r['runs']} | "
            f"{_mean_std(r['f1'])} | {_mean_std(r['HasAns_f1'])} | {_mean_std(r['NoAns_f1'])} | "
            f"{'yes' if answers(r) else 'no'} | {_epochs(r['answers_from_epoch'])} | "
            f"{_mean_std(r['final_loss'], '.3f')} | "
            f"{_to_target(r)} | "
            f"{_fmt(statistics.mean(r['time_per_step_s']) if r['time_per_step_s'] else None, unit=' s')} | "
            f"{_mean_std(r['grad_norm'])} | {_fmt(r['denom_spread'], '.0f', '×')} | "
            f"{_attention_update(t)} | {_fmt(t.get('qa_outputs/update_ratio'))} | "
            f"{_fmt(t.get('word_embeddings/eps_share'), '.2f')} |")
    lines += [
        "", f"answers: every run's dev F1 is more than {ANSWERS_MARGIN:g} point above the "
        "all-no-answer F1 (the share of unanswerable dev questions, 33.3 here). Answers from epoch: "
        "for each run, the first epoch after which its dev F1 is that far above it ('never': "
        "no epoch). Final loss: the "
        "mean of the last 5 logged training losses. Time to AdamW's loss: training seconds until "
        "that moving mean falls to AdamW's final loss "
        f"({_fmt(target, '.4f')}, its 3-epoch Table I runs); timings come from runs that shared "
        "the machine's 2 cores with one other run (time/step compares rows only roughly). Gradient "
        "norm: the global norm before clipping, mean over the run ('—': logged only by runs "
        "made since it is). "
        "Telemetry (`curvature.jsonl`, the record halfway through each run): denominator spread = largest "
        "/ smallest per-block median of (sqrt(v_hat))^k + eps; QA head update/weight = "
        "||last update|| / ||weights|| of the span head (and of the attention's query and key "
        "weights); eps share = share of word-embedding "
        "entries whose denominator eps dominates. Every block's numbers: telemetry.csv."]
    return "\n".join(lines) + "\n"


def write_ablation(results_root: str | Path, spec: dict) -> list[Path]:
    """ablation.md, ablation.csv, telemetry.csv and ablation.png (+ .pdf); returns the paths."""
    reference = run_logs(results_root, spec["scale"], spec["reference"])
    rows, target = ablation_rows(results_root, spec, reference)
    reference_f1 = [lg.final["f1"] for lg in reference if "f1" in lg.final]
    out = Path(results_root) / spec["scale"] / "ablation"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.md").write_text(ablation_markdown(rows, target, spec["scale"]))

    def mean(values):
        values = [v for v in values if v is not None]
        return f"{statistics.mean(values):.4f}" if values else ""

    with (out / "ablation.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["factor", "setting", "budget", "experiment", "runs", "f1_mean", "f1_runs",
                    "HasAns_f1_mean", "NoAns_f1_mean", "null_f1", "answers",
                    "answers_from_epoch_runs", "final_loss_mean",
                    "time_to_target_s_mean", "time_per_step_s_mean", "grad_norm_mean",
                    "denom_spread"])
        for r in rows:
            w.writerow([r["factor"], r["setting"], r["budget"], r["experiment"], r["runs"],
                        mean(r["f1"]), " ".join(f"{v:.2f}" for v in r["f1"]),
                        mean(r["HasAns_f1"]), mean(r["NoAns_f1"]), mean(r["null_f1"]),
                        answers(r), _epochs(r["answers_from_epoch"]) if r["runs"] else "",
                        mean(r["final_loss"]), mean(r["time_to_target_s"]),
                        mean(r["time_per_step_s"]), mean(r["grad_norm"]),
                        _fmt(r["denom_spread"], ".4g")])
    with (out / "telemetry.csv").open("w", newline="") as f:
        w = csv.writer(f)
        stats = sorted({k.split("/", 1)[1] for r in rows for k in r["telemetry"]})
        w.writerow(["factor", "setting", "budget", "block", *stats])
        for r in rows:
            blocks = sorted({k.split("/", 1)[0] for k in r["telemetry"]})
            for b in blocks:
                w.writerow([r["factor"], r["setting"], r["budget"], b,
                            *(_fmt(r["telemetry"].get(f"{b}/{s}"), ".6g") for s in stats)])
    written = [out / "ablation.md", out / "ablation.csv", out / "telemetry.csv",
               _figure(rows, target, reference_f1, out, spec["scale"])]
    confirmed = {f"{r['factor']}: {r['setting']}": r["logs"]  # runs read once, in spec order
                 for r in rows if r["part"] == "confirm"}
    if any(confirmed.values()):
        written.append(_confirmation_figure(confirmed, out, spec["scale"]))
    return written


def _confirmation_figure(confirmed: dict[str, list[RunLogs]], out: Path, scale: str) -> Path:
    """confirmation.png (+ .pdf): dev F1 after every epoch and the smoothed training loss of
    every run of the 10-epoch confirmation, one colour per setting: each seed a thin line
    (gid "seed"), their mean a thick one (gid "mean"; the F1 at the epochs every seed reached,
    the loss where the seeds logged the same steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = {setting: logs for setting, logs in confirmed.items() if logs}
    legend_rows = math.ceil((len(shown) + 1) / 2)  # 2 columns below both panels
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.6 + 0.25 * legend_rows),
                                  layout="constrained")
    null, plateau = [], []
    for i, (setting, logs) in enumerate(shown.items()):
        colour, style = plt.get_cmap("tab10")(i % 10), "-" if i < 10 else "--"
        thin = {"color": colour, "lw": 0.8, "alpha": 0.35, "gid": "seed"}
        f1_by_epoch: list[dict[float, float]] = []
        curves = []
        for lg in logs:
            evals = [r for r in lg.evals if "epoch" in r]
            f1_by_epoch.append({r["epoch"]: r["f1"] for r in evals})
            ax.plot([r["epoch"] for r in evals], [r["f1"] for r in evals], style, **thin)
            curve = loss_curve(lg)
            epoch, loss = curve["epoch"], smoothed(curve["loss"])
            curves.append((epoch, loss))
            ax2.plot(epoch, loss, style, **thin)
            plateau += list(loss[epoch >= 0.5])
            null += [v for r in evals[-1:] if (v := null_f1(r)) is not None]
        epochs = sorted(set.intersection(*(set(d) for d in f1_by_epoch)))
        label = f"{setting} ({'mean of ' if len(logs) > 1 else ''}{len(logs)} " \
                f"run{'s' if len(logs) > 1 else ''})"
        ax.plot(epochs, [statistics.mean(d[e] for d in f1_by_epoch) for e in epochs], style,
                color=colour, marker=".", lw=2, gid="mean", label=label)
        if all(np.array_equal(x, curves[0][0]) for x, _ in curves):
            ax2.plot(curves[0][0], np.mean([y for _, y in curves], axis=0), style, color=colour,
                     lw=1.6, gid="mean")
    if null:
        ax.axhline(statistics.mean(null), color="tab:red", ls=":", lw=1,
                   label=f"all-no-answer F1 ({statistics.mean(null):.1f})")
    ax.set(xlabel="epoch", ylabel="dev F1 after the epoch", title="dev F1 (thin: seeds; thick: mean)")
    ax2.set(xlabel="epoch", ylabel="training loss (moving mean of 5 logs)",
            title="training loss (thin: seeds; thick: mean)")
    for a in (ax, ax2):
        a.grid(alpha=0.3)
    if plateau:  # from half an epoch on: the first steps' losses would flatten the plateau
        ax2.set_ylim(top=1.05 * max(plateau))
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=8,
               frameon=False)
    fig.suptitle(f"make ablate ({scale} scale): the 10-epoch confirmation", fontsize=10)
    save_figure(fig, out / "confirmation.pdf", close=False)
    return save_figure(fig, out / "confirmation.png")


def _figure(rows: list[dict], target: float | None, reference_f1: list[float], out: Path,
            scale: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r["runs"]]
    labels = [f"{r['factor']}: {r['setting']}" + (
        f" [{r['budget']}]" if r["budget"] != "3 epochs" and r["budget"] not in r["setting"]
        else "") for r in shown]
    y = np.arange(len(shown))[::-1]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 0.38 * len(shown) + 1.6), sharey=True)
    colours = ["tab:green" if answers(r) else "tab:grey" for r in shown]
    ax.barh(y, [statistics.mean(r["f1"]) for r in shown], color=colours, alpha=0.8)
    for yi, r in zip(y, shown, strict=True):
        ax.plot(r["f1"], [yi] * len(r["f1"]), "k.", ms=4)
    null = [n for r in shown for n in r["null_f1"]]
    if null:
        ax.axvline(statistics.mean(null), color="tab:red", ls="--", lw=1,
                   label=f"all-no-answer F1 ({statistics.mean(null):.1f})")
    if reference_f1:
        ax.axvline(statistics.mean(reference_f1), color="tab:blue", ls="--", lw=1,
                   label=f"AdamW's F1 ({statistics.mean(reference_f1):.1f})")
    ax.set_xlabel("dev F1 (bar: mean; dots: runs)")
    ax.set_yticks(y, labels, fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
    ax2.barh(y, [statistics.mean(r["final_loss"]) if r["final_loss"] else 0 for r in shown],
             color=colours, alpha=0.8)
    if target is not None:
        ax2.axvline(target, color="tab:blue", ls="--", lw=1,
                    label=f"AdamW's final loss ({target:.2f})")
        ax2.legend(fontsize=8, loc="lower right")
    ax2.set_xlabel("final training loss (mean of the last 5 logs)")
    for a in (ax, ax2):
        a.grid(axis="x", alpha=0.3)
    fig.suptitle(f"make ablate ({scale} scale): green = answers (F1 above the all-no-answer F1 "
                 "in every run)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out / "ablation.pdf", close=False)
    return save_figure(fig, out / "ablation.png")
