"""scripts/spectrum.py's logic on a tiny ALBERT: outputs at initialisation and at a checkpoint."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from secondorder.experiments.spectrum import (
    OUTPUT_FILES,
    read_js_csv,
    resolve_checkpoint,
    run_spectrum,
)
from secondorder.runs import save_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = [
    "logger=none", "experiment_name=tiny", "data.num_train=64", "data.num_validation=8",
    "data.max_length=128", "data.doc_stride=32", "data.max_question_length=32",
    "model.tokenizer.vocab_size=600", "model.config.hidden_size=32",
    "model.config.embedding_size=16", "model.config.intermediate_size=64",
    "model.config.num_hidden_layers=2", "model.config.num_hidden_groups=2",
    "model.config.num_attention_heads=2", "model.config.max_position_embeddings=128",
    "spectrum.num_steps=10", "spectrum.num_runs=1", "spectrum.num_batches=1",
    "spectrum.batch_size=8", "spectrum.grid_points=3000", "spectrum.progress=false",
]


def compose_spectrum(tmp: Path, *overrides: str):
    base = [f"cache_dir={tmp / 'cache'}", f"results_root={tmp / 'results'}",
            f"spectrum.out_root={tmp / 'spectrum'}"]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("spectrum", overrides=TINY + base + list(overrides))


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("spectrum")


@pytest.fixture(scope="module")
def at_init(tmp):
    cfg = compose_spectrum(tmp)
    return cfg, run_spectrum(cfg)


def hydra_dict(blocks: dict[str, list[str]]) -> str:
    """A block mapping as a command-line override value: {name:['glob',...],...}."""
    return "{" + ",".join(f"{k}:[{','.join(repr(g) for g in v)}]" for k, v in blocks.items()) + "}"


def direct_loss(model, batches) -> float:
    model.eval()
    with torch.no_grad():
        return float(np.mean([float(model(**b).loss) for b in batches]))


def test_config_composes_with_the_demo_experiment(monkeypatch):
    monkeypatch.delenv("SECONDORDER_RESULTS", raising=False)  # the default roots
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("spectrum", overrides=["experiment=demo/table1_adamw"])
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert cfg.experiment_name == "demo/table1_adamw" and cfg.optimizer.name == "adamw"
    assert cfg.spectrum.name == "demo/table1_adamw/adamw-seed42/init"
    # a user's analysis goes to the ignored outputs/, beside the user's runs it reads
    assert cfg.spectrum.out_root == "outputs/spectrum"
    run_dir = Path(cfg.run_dir)
    assert run_dir == Path("outputs/demo/table1_adamw/adamw-seed42")
    assert resolve_checkpoint("last", run_dir) == run_dir / "checkpoints" / "last.pt"
    assert resolve_checkpoint("x/epoch2.pt", run_dir) == Path("x/epoch2.pt")
    assert resolve_checkpoint(None, run_dir) is None


def test_outputs_at_initialisation(at_init):
    cfg, res = at_init
    out = res.out_dir
    assert out == Path(cfg.spectrum.out_root) / "tiny" / "adamw-seed42" / "init"
    for name in OUTPUT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    # every parameter of the model lies in exactly one default block
    model = res.inputs.model
    assert res.unmatched == []
    blocks = {b: res.spectra.blocks[b].params for b in res.names}
    for n, _ in model.named_parameters():
        assert sum(n in ps for ps in blocks.values()) == 1, n
    assert res.names[0] == "word_embeddings" and res.names[-1] == "qa_outputs"
    assert "group1.layer0.ffn_in" in res.names
    # js.csv: named, symmetric, zero diagonal, one row per block, bounded
    names, mat = read_js_csv(out / "js.csv")
    assert names == res.names and mat.shape == (len(names), len(names))
    np.testing.assert_allclose(mat, mat.T, rtol=0, atol=0)
    assert np.all(np.diag(mat) == 0) and np.all(mat >= 0) and mat.max() <= np.sqrt(np.log(2)) + 1e-12
    summary = json.loads((out / "summary.json").read_text())
    off = mat[~np.eye(len(names), dtype=bool)]
    assert summary["js0"] == pytest.approx(off.mean(), rel=1e-12)
    assert summary["num_blocks"] == len(names) and summary["checkpoint"] is None
    assert summary["unmatched_params"] == [] and summary["dropped_blocks"] == []
    assert summary["settings"]["num_steps"] == 10 and summary["num_windows"] == 8
    assert summary["loss"] == pytest.approx(direct_loss(model, res.inputs.batches), rel=1e-5)
    # densities on one grid, each integrating to 1; extremes bracket the Ritz values
    npz = np.load(out / "densities.npz")
    assert list(npz["names"]) == names and npz["densities"].shape == (len(names), npz["grid"].size)
    widths = np.gradient(npz["grid"])
    np.testing.assert_allclose(npz["densities"] @ widths, 1.0, atol=1e-3)
    eig = json.loads((out / "eigenvalues.json").read_text())
    for b in names:
        e = eig["blocks"][b]
        assert e["lambda_min"] <= min(min(r) for r in e["nodes"]) + 1e-12
        assert e["lambda_max"] >= max(max(r) for r in e["nodes"]) - 1e-12
        assert e["dim"] == sum(dict(model.named_parameters())[n].numel() for n in e["params"])


def test_initial_weights_are_a_training_runs(at_init):
    from accelerate.utils import set_seed

    from secondorder.models.albert import build_model

    cfg, res = at_init
    set_seed(int(cfg.seed))  # what secondorder.train.run does right before build_model
    fresh = build_model(cfg.model, res.inputs.tokenizer)
    for (n, p), (_, q) in zip(fresh.named_parameters(), res.inputs.model.named_parameters(),
                              strict=True):
        assert torch.equal(p, q), n


def test_spectra_at_a_checkpoint(at_init, tmp):
    cfg0, res0 = at_init
    run_dir = tmp / "run"
    model = res0.inputs.model
    g = torch.Generator().manual_seed(0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for n, p in model.named_parameters():
        state[n] = p.detach() + 0.2 * p.detach().std() * torch.randn(p.shape, generator=g)
    save_checkpoint(run_dir / "checkpoints" / "last.pt", {"model": state, "progress": {"step": 7}})
    res0.inputs.tokenizer.save_pretrained(str(run_dir / "tokenizer"))
    # the run's config, differing in one model key: reported, not fatal
    run_cfg = OmegaConf.to_container(cfg0, resolve=True)
    run_cfg["model"]["config"]["classifier_dropout_prob"] = 0.3
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(run_cfg))

    cfg = compose_spectrum(tmp, f"run_dir={run_dir}", "spectrum.checkpoint=last")
    with pytest.warns(UserWarning, match="classifier_dropout_prob"):
        res = run_spectrum(cfg)
    assert res.out_dir.name == "last" and res.out_dir != res0.out_dir
    s = res.summary
    assert s["checkpoint"] == str(run_dir / "checkpoints" / "last.pt") and s["at"] == "last"
    assert s["tokenizer"] == str(run_dir / "tokenizer")  # the run's own tokenizer
    assert s["checkpoint_info"]["progress"] == {"step": 7}
    assert any("classifier_dropout_prob" in d for d in s["config_differences_from_run"])
    loaded = res.inputs.model
    for n, p in loaded.named_parameters():
        assert torch.equal(p, state[n]), n
    # the same fixed batches as at init, a different model: different loss and spectra
    for a, b in zip(res.inputs.batches, res0.inputs.batches, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert s["loss"] == pytest.approx(direct_loss(loaded, res.inputs.batches), rel=1e-5)
    assert s["loss"] != res0.summary["loss"]
    assert res.names == res0.names
    e0, e1 = res0.spectra.blocks, res.spectra.blocks
    assert any(e1[b].lambda_max != pytest.approx(e0[b].lambda_max, rel=1e-3) for b in res.names)
    assert s["js0"] == pytest.approx(read_js_csv(res.out_dir / "js.csv")[1][
        ~np.eye(len(res.names), dtype=bool)].mean())


def test_missing_checkpoint_and_unused_layer_groups(tmp):
    cfg = compose_spectrum(tmp, f"spectrum.checkpoint={tmp / 'nowhere' / 'last.pt'}")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run_spectrum(cfg)
    # 3 layer groups for 2 layers: group 2 is never used, its blocks are dropped and reported;
    # custom blocks: parameters in no block are reported too
    blocks = {"attention": ["*groups.0.*attention.*", "*groups.1.*attention.*"],
              "ffn": ["*groups.0.*ffn*", "*groups.1.*ffn*"], "head": ["qa_outputs.*"],
              "unused": ["*albert_layer_groups.2.*"]}
    cfg = compose_spectrum(tmp, "model.config.num_hidden_groups=3", "spectrum.num_steps=4",
                           "spectrum.name=custom", "spectrum.blocks=" + hydra_dict(blocks))
    with pytest.warns(UserWarning):
        res = run_spectrum(cfg)
    s = res.summary
    assert s["dropped_blocks"] == ["unused"] and res.names == ["attention", "ffn", "head"]
    assert s["unused_params"] and all("albert_layer_groups.2." in n for n in s["unused_params"])
    assert any(fnmatch.fnmatchcase(n, "*embeddings*") for n in s["unmatched_params"])
    assert not any(fnmatch.fnmatchcase(n, "*attention.*") for n in s["unmatched_params"])
