"""Bad input never trains the wrong thing, never loses a run, and ends in one readable line.

Each case runs scripts/train.py as a user would and checks the exit code, that the message names
the key or file, and that no file an earlier run wrote has changed.
"""

from __future__ import annotations

import errno
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from secondorder.runs import RunError, load_checkpoint, save_checkpoint
from tiny import TINY

pytestmark = pytest.mark.slow  # each case runs the training script in a subprocess

ROOT = Path(__file__).resolve().parents[2]


def train(tmp: Path, *overrides: str):
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "experiment=demo/table1_adamw",
           *TINY, "trainer.epochs=1", f"results_root={tmp / 'results'}",
           f"cache_dir={tmp / 'cache'}", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp)


def snapshot(run_dir: Path) -> dict[str, str]:
    """Hash of every file of a run, Hydra's per-command folders left out (each command adds one)."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and "hydra" not in p.parts}


def error_line(out) -> str:
    """The one line that says what went wrong (the log goes to stdout, tracebacks to stderr)."""
    text = out.stdout + out.stderr
    assert "Traceback" not in text, text
    lines = [ln for ln in text.splitlines() if "[ERROR]" in ln]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run with checkpoints every step; its files must never change."""
    tmp = tmp_path_factory.mktemp("finished")
    out = train(tmp, "trainer.checkpoint_every_steps=1", "trainer.keep_epoch_checkpoints=true")
    assert out.returncode == 0, out.stderr
    run_dir = tmp / "results" / "demo" / "table1_adamw" / "adamw-seed42"
    return tmp, run_dir, snapshot(run_dir)


def test_misspelt_experiment_lists_the_experiments(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"),
                          "experiment=demo/table1_adamww", f"results_root={tmp_path}"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "experiment=demo/table1_adamww does not exist" in out.stderr
    assert "demo/table1_adamw," in out.stderr and not any(tmp_path.iterdir())


@pytest.mark.parametrize(("change", "shown"), [
    ("optimizer.lr=5e-4", "optimizer.lr: 0.003 -> 0.0005"),  # demo/table1_adamw: lr 3e-3
    ("trainer.batch_size=16", "trainer.batch_size: 12 -> 16"),
    ("optimizer.betas=[0.8,0.999]", "optimizer.betas: [0.9, 0.999] -> [0.8, 0.999]"),
    ("data.seed=5", "data.seed: 0 -> 5"),
])
def test_resume_with_a_changed_config_is_refused(finished, change, shown):
    tmp, run_dir, before = finished
    out = train(tmp, "resume=true", change)
    assert out.returncode == 2 and shown in error_line(out) and "config.yaml" in error_line(out)
    assert snapshot(run_dir) == before


def test_resume_may_change_what_is_logged(finished):
    tmp, run_dir, before = finished
    out = train(tmp, "resume=true", "trainer.log_every_steps=2", "trainer.progress=true")
    assert out.returncode == 0, out.stderr
    assert snapshot(run_dir) == before  # a finished run: nothing more to train or write


def test_rerun_without_resume_is_refused(finished):
    tmp, run_dir, before = finished
    commands = sorted((run_dir / "hydra").iterdir())
    out = train(tmp)
    line = error_line(out)
    assert out.returncode == 2 and str(run_dir) in line and "overwrite=true" in line
    assert snapshot(run_dir) == before
    # not even Hydra's folder for the refused command is left in the finished run
    assert sorted((run_dir / "hydra").iterdir()) == commands


@pytest.mark.parametrize(("override", "key"), [
    ("trainer.batch_size=0", "trainer.batch_size=0"),
    ("trainer.batch_size=-3", "trainer.batch_size=-3"),
    ("eval.batch_size=0", "eval.batch_size=0"),
    ("trainer.log_every_steps=0", "trainer.log_every_steps=0"),
    ("trainer.checkpoint_every_steps=-5", "trainer.checkpoint_every_steps=-5"),
    ("data.num_train=0", "data.num_train=0"),
    ("trainer.mixed_precision=fp8", "trainer.mixed_precision='fp8'"),
    ("optimizer.lr=-1", "optimizer.lr=-1"),
])
def test_bad_values_name_the_key(finished, override, key):
    tmp, run_dir, before = finished
    out = train(tmp, "resume=true", override)
    line = error_line(out)
    assert out.returncode == 2 and key in line and "allowed" in line
    assert snapshot(run_dir) == before


def test_bad_first_optimizer_of_a_handoff_is_named_before_training(tmp_path):
    out = train(tmp_path, "strategy=handoff", "strategy.first_optimizer.lr=-2",
                "trainer.epochs=2", "strategy.first_epochs=1", "strategy.first_schedule_epochs=1")
    assert out.returncode == 2 and "strategy.first_optimizer.lr=-2" in error_line(out)
    written = [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
    assert all("hydra" in p.parts for p in written)  # only the command's own Hydra log


def test_corrupt_last_checkpoint_names_the_file_and_the_choices(finished, tmp_path):
    tmp, run_dir, _ = finished
    copy = tmp_path / "results" / "demo" / "table1_adamw" / "adamw-seed42"
    copy.mkdir(parents=True)
    for p in run_dir.rglob("*"):
        if p.is_file() and "hydra" not in p.parts:
            (copy / p.relative_to(run_dir)).parent.mkdir(parents=True, exist_ok=True)
            (copy / p.relative_to(run_dir)).write_bytes(p.read_bytes())
    last = copy / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated
    before = snapshot(copy)
    out = train(tmp_path, "resume=true", "trainer.checkpoint_every_steps=1",
                "trainer.keep_epoch_checkpoints=true")
    line = error_line(out)
    assert out.returncode == 2 and str(last) in line and "epoch1.pt" in line
    assert "overwrite=true" in line and snapshot(copy) == before


def test_diverging_run_names_a_finite_checkpoint(tmp_path):
    out = train(tmp_path, "optimizer.lr=1e4", "trainer.grad_clip_norm=null",
                "trainer.checkpoint_every_steps=1", "trainer.epochs=3", "data.num_train=96")
    line = error_line(out)
    assert out.returncode == 2 and ("not finite" in line or "loss is nan" in line), line
    named = Path(line.split("the last finite checkpoint is ")[1].split(" (step")[0])
    params = load_checkpoint(named)["model"]
    assert all(torch.isfinite(t).all() for t in params.values())


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}})
    before = path.read_bytes()

    def full_disk(obj, f):
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(RunError, match="disk full") as err:
        save_checkpoint(path, {"model": {"w": torch.zeros(1000, 1000)}})
    assert "No space left on device" in str(err.value) and "needs about 4 MiB" in str(err.value)
    assert "are free in" in str(err.value) and f"{path} from before is kept" in str(err.value)
    assert path.read_bytes() == before and not (tmp_path / "checkpoints" / "last.pt.tmp").exists()


def test_resume_of_a_run_saved_before_param_dtype_existed():
    """Runs saved before `trainer.param_dtype` existed trained in float32: they resume with the
    default, and a float64 resume of them is refused."""
    from secondorder.train.checks import resume_differences

    saved = {"trainer": {"epochs": 3}}
    assert resume_differences(saved, {"trainer": {"epochs": 3, "param_dtype": "float32"}}) == []
    assert resume_differences(saved, {"trainer": {"epochs": 3, "param_dtype": "float64"}}) == [
        "trainer.param_dtype: 'float32' -> 'float64'"]
