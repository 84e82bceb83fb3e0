"""build_optimizer: param groups, config files, and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from secondorder.optim import SOAA, AdaHessian, build_optimizer

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "optimizer"


class Block(torch.nn.Module):
    """Parameter names like a Hugging Face encoder (ALBERT spells both LayerNorm forms)."""

    def __init__(self):
        super().__init__()
        self.dense = torch.nn.Linear(4, 4)
        self.LayerNorm = torch.nn.LayerNorm(4)
        self.full_layer_layer_norm = torch.nn.LayerNorm(4)
        self.head = torch.nn.Linear(4, 2, bias=False)
        self.frozen = torch.nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def names_by_group(opt, model):
    name_of = {id(p): n for n, p in model.named_parameters()}
    return {g["group_name"]: sorted(name_of[id(p)] for p in g["params"]) for g in opt.param_groups}


@pytest.mark.parametrize("name", ["adamw", "adahessian", "soaa", "sgd"])
def test_config_files_build_with_no_decay_groups(name):
    path = CONFIG_DIR / f"{name}.yaml"
    lines = path.read_text().splitlines()
    assert lines[0] == f"name: {name}" and lines[1].startswith("#")
    cfg = OmegaConf.load(path)
    model = Block()
    opt = build_optimizer(cfg, model, num_training_steps=123)
    groups = names_by_group(opt, model)
    assert groups["decay"] == ["dense.weight", "head.weight"]
    assert groups["no_decay"] == [
        "LayerNorm.bias",
        "LayerNorm.weight",
        "dense.bias",
        "full_layer_layer_norm.bias",
        "full_layer_layer_norm.weight",
    ]
    wd = {g["group_name"]: g["weight_decay"] for g in opt.param_groups}
    assert wd["no_decay"] == 0.0
    assert wd["decay"] == cfg.weight_decay
    for g in opt.param_groups:
        assert g["lr"] == cfg.lr


def test_table_ii_values_reach_the_optimizers():
    model = Block()
    adamw = build_optimizer(OmegaConf.load(CONFIG_DIR / "adamw.yaml"), model, num_training_steps=1)
    assert isinstance(adamw, torch.optim.AdamW)
    g = adamw.param_groups[0]
    assert (g["lr"], g["weight_decay"], g["betas"], g["eps"]) == (5e-5, 0.01, (0.9, 0.999), 1e-8)

    ah = build_optimizer(
        OmegaConf.load(CONFIG_DIR / "adahessian.yaml"), model, num_training_steps=1
    )
    assert isinstance(ah, AdaHessian)
    g = ah.param_groups[0]
    assert (g["lr"], g["hessian_power"], g["block_size"], g["betas"]) == (
        3e-3,
        0.25,
        32,
        (0.9, 0.999),
    )
    assert (ah.hessian_interval, ah.hessian_batch_fraction, ah.n_samples, ah.seed) == (1, 1.0, 1, 0)

    sgd = build_optimizer(OmegaConf.load(CONFIG_DIR / "sgd.yaml"), model, num_training_steps=1)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9

    soaa = build_optimizer(OmegaConf.load(CONFIG_DIR / "soaa.yaml"), model, num_training_steps=777)
    assert isinstance(soaa, SOAA) and soaa.total_steps == 777


def test_plain_dict_and_custom_no_decay():
    model = Block()
    opt = build_optimizer(
        {"name": "adamw", "lr": 1e-3, "weight_decay": 0.1, "no_decay": ["head"]},
        model,
        num_training_steps=10,
    )
    groups = names_by_group(opt, model)
    assert groups["no_decay"] == ["head.weight"]
    assert "LayerNorm.weight" in groups["decay"]


def test_sgd_defaults_to_momentum_09():
    opt = build_optimizer({"name": "sgd", "lr": 0.1}, Block(), num_training_steps=1)
    assert opt.param_groups[0]["momentum"] == 0.9


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match=r"adamw.*adahessian.*soaa.*sgd"):
        build_optimizer({"name": "adam"}, Block(), num_training_steps=1)


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['hesian_power', 'lr_decay'\]"):
        build_optimizer(
            {"name": "adahessian", "hesian_power": 0.5, "lr_decay": 1},
            Block(),
            num_training_steps=1,
        )
    # a key valid for another optimizer is still unknown here
    with pytest.raises(ValueError, match="momentum"):
        build_optimizer({"name": "adamw", "momentum": 0.9}, Block(), num_training_steps=1)


@pytest.mark.parametrize(
    "name, key, value, allowed",
    [
        ("adamw", "lr", -1e-3, ">= 0"),
        ("sgd", "lr", -0.1, ">= 0"),
        ("sgd", "momentum", 1.0, "[0, 1)"),
        ("adahessian", "hessian_power", 0.0, "(0, 1]"),
        ("adahessian", "hessian_power", 1.5, "(0, 1]"),
        ("adahessian", "betas", [0.9, 1.0], "[0, 1)"),
        ("adamw", "betas", [0.9], "[0, 1)"),
        ("adahessian", "hessian_interval", 0, ">= 1"),
        ("adahessian", "hessian_interval", 1.5, ">= 1"),
        ("adahessian", "hessian_batch_fraction", 0.0, "(0, 1]"),
        ("adahessian", "hessian_batch_fraction", 1.2, "(0, 1]"),
        ("soaa", "gamma", 1.0, "[0, 1)"),
        ("soaa", "betas", [-0.1, 0.9], "[0, 1)"),
    ],
)
def test_bad_values_one_readable_line(name, key, value, allowed):
    with pytest.raises(ValueError) as info:
        build_optimizer({"name": name, key: value}, Block(), num_training_steps=10)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"optimizer.{key}=" in msg and allowed in msg


def test_model_without_trainable_parameters():
    model = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer({"name": "adamw"}, model, num_training_steps=1)
