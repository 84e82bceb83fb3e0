"""make gpu-check's CPU-runnable part: the plan (--dry-run), which runs nothing and needs no GPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_lists_every_step_with_its_command_and_writes_nothing(tmp_path):
    out = tmp_path / "gpu_check"
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py", "--dry-run", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    cfg = yaml.safe_load((ROOT / "configs" / "gpu_check.yaml").read_text())
    for step in cfg["steps"]:
        assert f"  {step['name']} (<= {step['timeout_s']} s)" in proc.stdout
    assert "-m gpu tests/gpu" in proc.stdout
    assert "scripts/bench_step.py --device cuda --bf16" in proc.stdout
    assert proc.stdout.count("scripts/train.py experiment=demo/pretrained") == 2
    assert "missing packages" not in proc.stdout  # make install provides all of them
    assert not out.exists()
    # the steps fit the 8 minutes
    assert sum(s["timeout_s"] for s in cfg["steps"]) <= 8 * 60


def test_unknown_step_is_one_line():
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py", "--dry-run", "--steps", "nope"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "gpu_check: unknown step(s) ['nope']; known: "
        "['gpu_tests', 'bench', 'minilm_adamw', 'minilm_adahessian']"]
