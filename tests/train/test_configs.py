"""Every experiment config composes, and the paper configs carry the report's Table II values."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from secondorder.optim import OPTIMIZERS
from secondorder.train.trainer import plan_phases

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENTS = sorted(
    str(p.relative_to(CONFIGS / "experiment").with_suffix("")) for p in (CONFIGS / "experiment").rglob("*.yaml")
)


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=overrides)


def test_there_are_paper_and_demo_experiments():
    assert any(e.startswith("paper/") for e in EXPERIMENTS)
    assert "demo/table1_adamw" in EXPERIMENTS


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_resolves(experiment):
    cfg = compose_train([f"experiment={experiment}"])
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    phases = plan_phases(cfg)
    assert sum(p.epochs for p in phases) <= cfg.trainer.epochs
    assert all(p.optimizer["name"] in OPTIMIZERS for p in phases)  # the registry's names


def test_table1_adamw_is_table2_of_the_report():
    cfg = compose_train(["experiment=paper/table1_adamw"])
    assert cfg.model.name_or_path == "albert-base-v2" and cfg.model.pretrained
    assert cfg.data.source == "hub" and cfg.data.hub_name == "squad_v2"
    assert cfg.optimizer.name == "adamw"
    assert cfg.optimizer.lr == 5e-5 and cfg.optimizer.weight_decay == 0.01
    assert list(cfg.optimizer.betas) == [0.9, 0.999]
    assert cfg.trainer.batch_size == 16 and cfg.trainer.epochs == 3
    assert cfg.schedule.name == "linear_warmup" and cfg.schedule.warmup_fraction == 0.1
    assert (cfg.data.max_length, cfg.data.doc_stride) == (384, 128)
    assert (cfg.eval.n_best_size, cfg.eval.max_answer_length) == (20, 30)


@pytest.mark.parametrize(("experiment", "power"), [("table1_adahessian_k05", 0.5), ("table1_adahessian_k025", 0.25)])
def test_table1_adahessian(experiment, power):
    cfg = compose_train([f"experiment=paper/{experiment}"])
    assert cfg.optimizer.name == "adahessian" and cfg.optimizer.lr == 3e-3
    assert cfg.optimizer.hessian_power == power and cfg.optimizer.weight_decay == 0.01
    assert cfg.trainer.batch_size == 16 and cfg.trainer.epochs == 3


@pytest.mark.parametrize("lr", [3e-3, 3e-4, 3e-5])
def test_table3_handoff(lr):
    cfg = compose_train([f"experiment=paper/table3_handoff_lr{lr:.0e}".replace("e-0", "e-")])
    phases = plan_phases(cfg)
    # init_from set: the AdamW phase was trained by table1_adamw; one AdaHessian epoch here
    assert [(p.name, p.epochs) for p in phases] == [("adahessian", 1)]
    assert cfg.optimizer.lr == pytest.approx(lr) and cfg.optimizer.hessian_power == 0.5
    assert cfg.strategy.init_from.endswith("table1_adamw/adamw-seed42/checkpoints/epoch2.pt")
    both = plan_phases(compose_train([f"experiment=paper/table3_handoff_lr{lr:.0e}".replace("e-0", "e-"),
                                      "strategy.init_from=null"]))
    assert [(p.name, p.epochs, p.schedule_epochs) for p in both] == [("adamw", 2, 3), ("adahessian", 1, 1)]


def test_unknown_group_option_is_one_readable_error():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="optimizer"):
        compose_train(["optimizer=adam_typo"])


def test_bad_handoff_split_is_rejected():
    cfg = compose_train(["strategy=handoff", "strategy.first_epochs=3", "trainer.epochs=3"])
    with pytest.raises(ValueError, match="first_epochs"):
        plan_phases(cfg)
