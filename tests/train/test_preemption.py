"""SIGTERM and SIGUSR1 (what SLURM sends on preemption and before the time limit) make a real
training process finish its step, checkpoint it, say so and exit with code 75; resuming gives
exactly the files of an uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from secondorder.runs import load_checkpoint, read_jsonl
from tiny import TINY

pytestmark = pytest.mark.slow  # signals to training subprocesses, then resumes

ROOT = Path(__file__).resolve().parents[2]
TIMES = ("train_time_s", "eval_time_s", "step_time_s", "examples_per_s", "time_s", "rss_gib")


def command(tmp: Path, name: str, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "train.py"), "experiment=demo/table1_adamw",
            *TINY, "data.num_train=240", "trainer.epochs=2", f"results_root={tmp / name}",
            f"cache_dir={tmp / 'cache'}", *extra]


def logs(run_dir: Path) -> dict:
    strip = lambda rs: [{k: v for k, v in r.items() if k not in TIMES} for r in rs]  # noqa: E731
    final = json.loads((run_dir / "eval.json").read_text())
    return {"eval": {k: v for k, v in final.items() if k not in TIMES},
            **{s: strip(read_jsonl(run_dir / f"{s}.jsonl")) for s in ("metrics", "evals", "epochs")},
            "predictions": (run_dir / "predictions.json").read_text()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("preempt")
    subprocess.run(command(tmp, "straight"), check=True, capture_output=True)
    return tmp, logs(tmp / "straight" / "demo" / "table1_adamw" / "adamw-seed42")


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM], ids=lambda s: s.name)
def test_signal_checkpoints_the_step_and_resume_is_exact(uninterrupted, sig):
    tmp, expected = uninterrupted
    name = f"killed-{sig.name}"
    run_dir = tmp / name / "demo" / "table1_adamw" / "adamw-seed42"
    proc = subprocess.Popen(command(tmp, name), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until it is training mid-epoch (a few steps logged)
        records = read_jsonl(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").exists() else []
        if len(records) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 75, out
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    step = state["progress"]["step"]
    assert state["progress"]["batch"] > 0  # mid-epoch
    line = next(ln for ln in out.splitlines() if f"{sig.name} received" in ln)
    assert f"at step {step};" in line and str(run_dir / "checkpoints" / "last.pt") in line
    assert read_jsonl(run_dir / "metrics.jsonl")[-1]["step"] == step  # logged up to it, no more
    assert not (run_dir / "complete.json").exists()
    subprocess.run(command(tmp, name, "resume=true"), check=True, capture_output=True)
    assert logs(run_dir) == expected


def test_sbatch_forwards_the_signal_and_requeues_after_the_checkpoint(tmp_path):
    """slurm/train.sbatch under a stub `scontrol`: USR1 to the batch shell reaches the trainer,
    and the job is requeued only once the checkpoint is on disk."""
    stub = tmp_path / "bin"
    stub.mkdir()
    calls = tmp_path / "scontrol.log"
    run_dir = tmp_path / "r" / "demo" / "table1_adamw" / "adamw-seed42"
    last = run_dir / "checkpoints" / "last.pt"
    (stub / "scontrol").write_text(
        f"#!/bin/bash\necho \"$@ checkpoint=$(test -f {last} && echo yes || echo no)\" >> {calls}\n")
    (stub / "scontrol").chmod(0o755)
    env = {"PATH": f"{stub}:/usr/bin:/bin", "SLURM_JOB_ID": "4242", "SLURM_SUBMIT_DIR": str(ROOT),
           "PY": sys.executable, "HOME": str(tmp_path)}
    args = command(tmp_path, "r")[2:]  # the Hydra overrides only
    proc = subprocess.Popen(["bash", str(ROOT / "slurm" / "train.sbatch"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(read_jsonl(run_dir / "metrics.jsonl")) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 75, out
    assert calls.read_text() == "requeue 4242 checkpoint=yes\n"
    assert load_checkpoint(last)["progress"]["batch"] > 0
