"""Offline, Hub loads fail at once with a message that says what to do — no traceback."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from secondorder import hub
from secondorder.data.squad import load_records
from secondorder.hub import HubUnavailableError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))


def test_squad_v2_offline_names_the_fixes(no_hub):
    t0 = time.perf_counter()
    with pytest.raises(HubUnavailableError) as err:
        load_records({"source": "hub", "hub_name": "squad_v2"})
    assert time.perf_counter() - t0 < 10  # no minute of retries
    message = str(err.value)
    assert "squad_v2" in message
    for fix in ("HF_DATASETS_OFFLINE", "data.train_file", "data=synthetic"):
        assert fix in message


def test_pretrained_model_offline_names_the_fixes(no_hub):
    from secondorder.models.albert import build_model

    with pytest.raises(HubUnavailableError, match="model.name_or_path"):
        build_model({"pretrained": True, "name_or_path": "albert-base-v2"}, tokenizer=None)


def test_train_script_offline_prints_one_line_not_a_traceback(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path), "WANDB_MODE": "offline"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "data=squad_v2", "logger=none",
         f"results_root={tmp_path / 'results'}"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    assert "Could not load data set 'squad_v2'" in out
    assert "data=synthetic" in out
