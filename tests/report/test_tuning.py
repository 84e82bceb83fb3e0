"""make tune in miniature: a Hydra multirun of the AdaHessian sweep on tiny data, scored on
held-out training questions, then the tuning table and figure."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from secondorder.report.tuning import write_tuning
from tiny import TINY

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # a Hydra multirun of training subprocesses
def test_multirun_sweep_and_its_table(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "-m",
           "experiment=demo/tune_adahessian", *TINY, "data.num_train=48",
           "data.heldout_questions=10", "optimizer.lr=1e-3,1e-2", f"results_root={tmp_path}",
           f"cache_dir={tmp_path / 'cache'}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    csv_path, budget, png = write_tuning(tmp_path, "demo")
    rows = list(csv.DictReader(csv_path.open()))
    # 2 lrs x average_abs false / true (the config's sweep), each a complete run
    assert [(r["lr"], r["average_abs"]) for r in rows] == [
        ("0.001", "False"), ("0.01", "False"), ("0.001", "True"), ("0.01", "True")]
    for r in rows:
        assert r["optimizer"] == "adahessian" and r["hessian_power"] == "0.5"
        assert 0 <= float(r["heldout_f1"]) <= 100 and "demo/tuning/adahessian" in r["run_dir"]
    import json

    scored = json.loads((Path(rows[0]["run_dir"]) / "eval.json").read_text())["total"]
    assert 10 <= scored < 24  # held-out training questions, not the 8-question dev split
    assert png.stat().st_size > 5000
    # the budget: one sweep of 4 settings, 1 epoch each (the config's trainer.epochs)
    line = [x for x in budget.read_text().splitlines() if x.startswith("| adahessian |")]
    assert line and line[0].split("|")[2:5] == [" adahessian ", " 4 ", " 1 "], line


def test_budget_counts_settings_and_picks_best_and_lowest_by_hand():
    from secondorder.report.tuning import budget_markdown

    def row(sweep, lr, f1, loss, epochs=1):
        return {"sweep": sweep, "optimizer": sweep.split("_")[0], "epochs": epochs, "lr": lr,
                "heldout_f1": f1, "final_train_loss": loss}

    rows = [row("sophia", 1e-3, 35.0, 1.7), row("sophia", 1e-2, 36.5, 1.9),
            row("sophia", 1e-1, 33.3, float("nan")),  # a diverged run: not the lowest loss
            row("soap", 3e-3, 33.3, 2.1, epochs=2)]
    rows += [row("shampoo", 1e-3, 33.3, 2.3), row("shampoo", 3e-3, 33.3, 2.2),  # both abstain
             row("adamw", 1e-3, 33.3, 2.0), row("adamw", 3e-3, 33.3, 1.9),
             row("adamw", 1e-2, 20.0, 3.0)]  # two tie at the best F1
    lines = budget_markdown(rows, started={"sophia": 4}).splitlines()
    assert lines[2] == "| sophia | sophia | 4 (1 unfinished) | 1 | 36.5 (0.01) | 1.70 (0.001) |"
    assert lines[3] == "| soap | soap | 1 | 2 | 33.3 (0.003) | 2.10 (0.003) |"
    assert lines[4] == "| shampoo | shampoo | 2 | 1 | 33.3 (every lr) | 2.20 (0.003) |"
    assert lines[5] == "| adamw | adamw | 3 | 1 | 33.3 (0.001, 0.003) | 1.90 (0.003) |"
