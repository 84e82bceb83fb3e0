"""Every experiment config trains one step (the lightning-hydra-template habit): a config that
composes but cannot run is caught here. Paper configs run with the embedded model and data
swapped in (albert-base-v2 and squad_v2 cannot be downloaded here); hand-offs start from a
checkpoint written by a one-step AdamW run instead of an epoch-2 checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from secondorder.runs import CHECKPOINTS, load_checkpoint, read_jsonl
from secondorder.train import run
from secondorder.train.trainer import StopRequested
from tiny import TINY as BASE

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENTS = sorted(
    str(p.relative_to(CONFIGS / "experiment").with_suffix(""))
    for p in (CONFIGS / "experiment").rglob("*.yaml")
)
TINY = [*BASE, "data.num_train=48", "trainer.batch_size=4", "trainer.stop_after_steps=1",
        "trainer.checkpoint_every_steps=1"]
EMBEDDED = ["data=synthetic"]  # in place of squad_v2 (TINY puts the tiny ALBERT in)


def tiny_cfg(tmp: Path, experiment: str, *overrides: str):
    paths = [f"results_root={tmp / 'results'}", f"cache_dir={tmp.parent / 'cache'}"]
    swap = EMBEDDED if experiment.startswith("paper/") else []
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=[f"experiment={experiment}", *swap, *TINY, *paths,
                                           *overrides])


@pytest.fixture(scope="module")
def handoff_start(tmp_path_factory) -> Path:
    """A one-step AdamW checkpoint of the tiny model, for the hand-offs' `strategy.init_from`."""
    tmp = tmp_path_factory.mktemp("start")
    cfg = tiny_cfg(tmp, "demo/table1_adamw")
    with pytest.raises(StopRequested):
        run(cfg)
    return Path(cfg.run_dir) / CHECKPOINTS / "last.pt"


def test_every_experiment_is_listed():
    assert {"demo/table1_adamw", "paper/table1_adamw", "paper/table3_handoff_lr3e-4"} <= set(
        EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_trains_one_step(experiment, tmp_path_factory, handoff_start):
    tmp = tmp_path_factory.mktemp(experiment.replace("/", "_"))
    extra = []
    if tiny_cfg(tmp, experiment).strategy.get("init_from"):
        extra.append(f"strategy.init_from={handoff_start}")
    if tiny_cfg(tmp, experiment).data.get("heldout_questions"):  # the tuning experiments
        extra.append("data.heldout_questions=8")
    cfg = tiny_cfg(tmp, experiment, *extra)
    with pytest.raises(StopRequested, match="stopped after step 1"):
        run(cfg)
    run_dir = Path(cfg.run_dir)
    # results/<scale>/<experiment>/<run>/ (the tuning sweeps: <scale>/tuning/<optimizer>/)
    assert run_dir.parent == Path(cfg.results_root) / cfg.experiment_name
    assert cfg.experiment_name == experiment or "/tune_" in experiment
    (record,) = read_jsonl(run_dir / "metrics.jsonl")
    assert record["step"] == 1 and record["optimizer"] == cfg.optimizer.name
    assert torch.isfinite(torch.tensor(record["loss"]))
    state = load_checkpoint(run_dir / CHECKPOINTS / "last.pt")
    assert state["progress"]["step"] == 1 and state["phase_optimizer"] == cfg.optimizer.name
