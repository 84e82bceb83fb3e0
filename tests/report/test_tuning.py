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
    csv_path, png = write_tuning(tmp_path, "demo")
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
