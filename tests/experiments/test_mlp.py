"""Scaled MLP of Figure 5 / Table 3 and the heterogeneity script (smoke level)."""

from __future__ import annotations

import json
import math
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from secondorder.curvature.blocks import resolve_blocks
from secondorder.experiments.mlp import (
    ScaledMLP,
    load_digits_split,
    mlp_blocks,
    mlp_js0,
    train_eval,
)

ROOT = Path(__file__).resolve().parents[2]


def test_scaled_mlp_forward_matches_manual_computation():
    torch.manual_seed(0)
    model = ScaledMLP(c=3.0)
    assert [tuple(layer.weight.shape) for layer in model.layers] == [
        (300, 64),
        (128, 300),
        (64, 128),
        (10, 64),
    ]
    x = torch.randn(5, 64)
    h = x
    for k, layer in enumerate(model.layers):
        h = 3.0 * (h @ layer.weight.T + layer.bias)
        if k < 3:
            h = h.clamp_min(0.0)
    torch.testing.assert_close(model(x), h)
    resolved, unmatched = resolve_blocks(
        [n for n, _ in model.named_parameters()], mlp_blocks(model)
    )
    assert resolved == {f"layer{k + 1}": [f"layers.{k}.weight"] for k in range(4)}
    assert unmatched == [f"layers.{k}.bias" for k in range(4)]


def test_digits_split():
    data = load_digits_split(seed=0)
    assert data.x_train.shape == (1437, 64) and data.x_test.shape == (360, 64)
    assert abs(float(data.x_train.mean())) < 1e-5
    assert float(data.x_train.std()) == pytest.approx(1.0, abs=1e-3)
    assert sorted(np.unique(data.y_test.numpy()).tolist()) == list(range(10))


def test_js0_and_training_smoke():
    data = load_digits_split(seed=0)
    info = mlp_js0(2.0, data, num_batches=1, num_steps=8, num_runs=1, grid_points=2000)
    assert 0.0 <= info["js0"] <= math.sqrt(math.log(2.0))
    mat = np.asarray(info["js_matrix"])
    assert mat.shape == (4, 4) and np.allclose(mat, mat.T)
    for b in info["blocks"].values():
        assert b["lambda_min"] <= b["lambda_max"]
    r = train_eval(1.0, "adam", 1e-3, data, epochs=2)
    assert len(r["curve"]) == 2 and 0.5 < r["test_acc"] <= 1.0  # 10 classes: chance is 0.1
    bad = train_eval(15.0, "sgd", 0.1, data, epochs=1)  # c^4 ~ 5e4: plain SGD blows up
    assert bad["diverged"] and math.isnan(bad["test_acc"])


def test_heterogeneity_script_quick(tmp_path, monkeypatch):
    out = tmp_path / "het"
    monkeypatch.setattr(
        sys, "argv", ["heterogeneity.py", "--quick", "--no-progress", "--out", str(out)]
    )
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(ROOT / "scripts" / "heterogeneity.py"), run_name="__main__")
    assert exc.value.code == 0
    for name in ("quadratic.json", "mlp.json", "summary.json", "figure8.png", "figure5.png"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert "load_digits" in summary["mlp"]["dataset"]
    assert len(summary["mlp"]["js0"]) == len(summary["mlp"]["c"]) == 2
    quad = json.loads((out / "quadratic.json").read_text())
    assert set(quad) == {"3", "4"}
