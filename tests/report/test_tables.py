"""Tables put our runs (mean ± std over seeds) and cost ratios next to the published numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secondorder.report.tables import comparison_table, write_table

PAPER = Path(__file__).resolve().parents[2] / "results" / "published"


def fake_run(root: Path, experiment: str, seed: int, f1: float, exact: float, epoch_times, peak):
    run = root / "demo" / experiment / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "eval.json").write_text(json.dumps({"f1": f1, "exact": exact}))
    (run / "epochs.jsonl").write_text("".join(
        json.dumps({"epoch": i + 1, "time_s": t, "rss_gib": peak * (0.9 if i else 1.0)}) + "\n"
        for i, t in enumerate(epoch_times)))


def test_table1_rows_means_and_ratios(tmp_path):
    fake_run(tmp_path, "table1_adamw", 1, 50.0, 40.0, [10.0, 10.0], 2.0)
    fake_run(tmp_path, "table1_adamw", 2, 54.0, 44.0, [10.0, 10.0], 2.0)
    fake_run(tmp_path, "table1_adahessian_k025", 1, 48.0, 39.0, [30.0, 30.0], 2.5)
    rows, markdown = comparison_table("table1", tmp_path, "demo", paper_dir=PAPER)
    by_row = {r["row"]: r for r in rows}
    assert by_row["AdamW"]["runs"] == 2 and by_row["AdamW"]["f1"] == [50.0, 54.0]
    assert by_row["AdamW"]["paper_f1"] == pytest.approx(80.539)
    assert by_row["AdaHess[k=0.5]"]["runs"] == 0
    # mean ± sample std of 50 and 54: 52 ± 2.828
    assert "| AdamW | 52.000 ± 2.828 | 42.000 ± 2.828 | 80.539 | 77.066 | 2 | 1.00× | 1.00× |" in markdown
    # 30 s vs 10 s per epoch, peak 2.5 vs 2.0 GiB
    assert "| AdaHess[k=0.25] | 48.000 | 39.000 | 78.762 | 75.280 | 1 | 3.00× | 1.25× |" in markdown
    assert "| AdaHess[k=0.5] | — | — | 75.918 | 72.248 | 0 | — | — |" in markdown
    out = write_table("table1", tmp_path, "demo", paper_dir=PAPER)
    assert out == tmp_path / "demo" / "table1.md" and out.read_text() == markdown
