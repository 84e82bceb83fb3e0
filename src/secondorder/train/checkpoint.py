"""Checkpoints that let a killed run continue exactly where its last checkpoint was taken.

A checkpoint holds the model, the optimizer and scheduler of the current phase, every RNG
state (Python, NumPy, torch CPU and CUDA) and the position in the data order (phase, epoch,
batch within the epoch, global step). It is written to a temporary file and renamed, so a
kill during the write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({**state, "rng": rng_state()}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no checkpoint at {path}: check run_dir (resume=true continues the run in run_dir) "
            "or strategy.init_from"
        )
    # Our own files: they hold RNG states and optimizer state, not only tensors.
    return torch.load(path, map_location=map_location, weights_only=False)
