"""Opening a checkpoint never runs code: every checkpoint is read with torch's weights-only
loader. A crafted file is refused in one line by resume=true and by strategy.init_from, and the
code in it never runs; our own checkpoints (written now, or before the NumPy RNG state was
stored as a tensor) load and resume bit-identically."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from secondorder.runs import CHECKPOINTS, RunError, is_complete, load_checkpoint, read_jsonl
from secondorder.train import run
from secondorder.train.trainer import StopRequested
from tiny import TINY

ROOT = Path(__file__).resolve().parents[2]


class _RunsCode:
    """Unpickling this creates the file `marker`: the harm a crafted checkpoint could do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {}, "progress": {}, "payload": _RunsCode(marker)}, path)
    return path


def train(tmp: Path, *overrides: str):
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "experiment=demo/table1_adamw",
           *TINY, "trainer.epochs=1", f"results_root={tmp / 'results'}",
           f"cache_dir={tmp / 'cache'}", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp)


def error_lines(out) -> list[str]:
    text = out.stdout + out.stderr
    assert "Traceback" not in text, text
    return [ln for ln in text.splitlines() if "[ERROR]" in ln]


def test_the_crafted_file_would_run_code_if_opened_unsafely(tmp_path):
    """Guards the tests below: the payload really runs under the unsafe loader."""
    path = crafted_checkpoint(tmp_path / "evil.pt", tmp_path / "ran")
    torch.load(path, weights_only=False)
    assert (tmp_path / "ran").exists()


def test_load_checkpoint_refuses_it_and_names_the_file(tmp_path):
    path = crafted_checkpoint(tmp_path / "evil.pt", tmp_path / "ran")
    with pytest.raises(RunError, match=r"evil\.pt is refused: it holds .*system.* nothing from it"):
        load_checkpoint(path)
    assert not (tmp_path / "ran").exists()


def test_resume_refuses_a_crafted_last_checkpoint(tmp_path):
    marker = tmp_path / "ran"
    run_dir = tmp_path / "results" / "demo" / "table1_adamw" / "adamw-seed42"
    crafted_checkpoint(run_dir / CHECKPOINTS / "last.pt", marker)
    out = train(tmp_path, "resume=true")
    lines = error_lines(out)
    assert out.returncode == 2 and len(lines) == 1, out.stdout + out.stderr
    assert "last.pt is refused" in lines[0] and "nothing from it was run" in lines[0]
    assert not marker.exists()


def test_init_from_refuses_a_crafted_checkpoint(tmp_path):
    marker = tmp_path / "ran"
    evil = crafted_checkpoint(tmp_path / "downloaded" / "epoch2.pt", marker)
    out = train(tmp_path, "strategy=handoff", "optimizer=adahessian", "trainer.epochs=2",
                "strategy.first_epochs=1", f"strategy.init_from={evil}")
    lines = error_lines(out)
    assert out.returncode == 2 and len(lines) == 1, out.stdout + out.stderr
    assert str(evil) in lines[0] and "is refused" in lines[0]
    assert not marker.exists()


def test_our_checkpoints_hold_only_what_the_plain_safe_loader_accepts(tmp_path):
    out = train(tmp_path, "optimizer=adahessian")
    assert out.returncode == 0, out.stderr
    last = next((tmp_path / "results").rglob("last.pt"))
    state = torch.load(last, weights_only=True)  # no allow-list at all
    assert isinstance(state["rng"]["numpy"]["keys"], torch.Tensor)
    with pytest.raises(pickle.UnpicklingError):  # and a NumPy array would not pass it
        torch.save({"a": np.zeros(3)}, tmp_path / "np.pt")
        torch.load(tmp_path / "np.pt", weights_only=True)


def _small(tmp: Path, *overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=[
            "experiment=demo/table1_adamw", *TINY, "data.num_train=48", "trainer.batch_size=8",
            "trainer.epochs=2", "trainer.checkpoint_every_steps=3",
            f"results_root={tmp / 'results'}", f"cache_dir={tmp.parent / 'cache'}", *overrides])


def _as_written_before(path: Path) -> None:
    """Rewrite a checkpoint as the code before weights-only loading wrote it: the NumPy RNG
    state as NumPy's own tuple (an array inside)."""
    state = torch.load(path, weights_only=True)
    for rng in [state["rng"], *state.get("rng_ranks", [])]:
        numpy = rng["numpy"]
        rng["numpy"] = (numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                        numpy["has_gauss"], numpy["cached_gaussian"])
    torch.save(state, path)


@pytest.mark.parametrize("extra", [
    (),
    # AdaHessian on the encoder, AdamW on the rest, Hessian products on an independent batch
    ("optimizer=adahessian", "optimizer.hessian_batch=independent",
     "+optimizer.delegate={match: [qa_outputs, embeddings], optimizer: {name: adamw, lr: 0.003}}"),
], ids=["adamw", "split-independent"])
def test_a_checkpoint_written_before_resumes_bit_identically(tmp_path, extra):
    straight = _small(tmp_path / "a", *extra)
    run(straight)
    killed = _small(tmp_path / "b", *extra, "trainer.stop_after_steps=8")
    with pytest.raises(StopRequested):
        run(killed)
    last = Path(killed.run_dir) / CHECKPOINTS / "last.pt"
    _as_written_before(last)
    with pytest.raises(pickle.UnpicklingError):  # it holds a NumPy array ...
        torch.load(last, weights_only=True)
    assert isinstance(load_checkpoint(last)["rng"]["numpy"], tuple)  # ... which we let through
    run(_small(tmp_path / "b", *extra, "resume=true"))
    assert is_complete(killed.run_dir)
    logs = [read_jsonl(Path(c.run_dir) / "metrics.jsonl") for c in (straight, killed)]
    keep = ("step", "loss", "lr", "grad_norm")
    assert [{k: r[k] for k in keep} for r in logs[0]] == [{k: r[k] for k in keep} for r in logs[1]]
    evals = [read_jsonl(Path(c.run_dir) / "evals.jsonl")[-1]["f1"] for c in (straight, killed)]
    assert evals[0] == evals[1]
