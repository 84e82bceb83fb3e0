"""Curvature telemetry against the float64 transcription of Algorithm 1, and the role blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_adahessian import SHAPES, init_params, make_data, reference_adahessian, run_optimizer

from secondorder.curvature.blocks import role_blocks
from secondorder.optim import CurvatureHooks
from secondorder.optim.telemetry import curvature_telemetry

pytestmark = pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")


def test_statistics_equal_the_reference_denominators_and_update():
    x, y = make_data()
    p0 = init_params()
    # wd = 0: the telemetry's update is then exactly the last step's change
    hp = dict(lr=0.05, betas=(0.9, 0.95), eps=0.6, wd=0.0, k=0.5, block=1)
    record: dict = {}
    reference_adahessian(p0, x, y, 4, interval=1, n_samples=1, seed=7, record=record, **hp)
    params = [p.clone().requires_grad_() for p in p0]
    opt = run_optimizer(params, x, y, 3, lr=hp["lr"], betas=hp["betas"], eps=hp["eps"],
                        hessian_power=hp["k"], block_size=1, seed=7,
                        hooks=CurvatureHooks(track_negatives=True))  # as the trainer builds it
    before = np.concatenate([p.detach().reshape(-1).numpy() for p in params])
    loss = ((torch.tanh(x @ params[0].T + params[1]) @ params[2].T + params[3] - y) ** 2).mean()
    loss.backward(create_graph=True)
    opt.step()
    opt.zero_grad(set_to_none=True)
    named = {f"p{i}": p for i, p in enumerate(params)}
    blocks = {"weights": ["p0", "p2"], "biases": ["p1", "p3"]}
    stats = curvature_telemetry(opt, named, blocks)

    sizes = [int(np.prod(s)) for s in SHAPES]
    cut = np.cumsum(sizes)[:-1]
    denom = np.split(record["denominator"], cut)
    est = np.split(record["estimate"], cut)
    upd = np.split(record["update"], cut)
    theta = np.split(before + record["update"], cut)
    for block, idx in (("weights", [0, 2]), ("biases", [1, 3])):
        d = np.concatenate([denom[i] for i in idx])
        np.testing.assert_allclose(
            [stats[f"{block}/denom_p01"], stats[f"{block}/denom_median"],
             stats[f"{block}/denom_p99"]], np.quantile(d, [0.01, 0.5, 0.99]), rtol=1e-9)
        assert stats[f"{block}/eps_share"] == pytest.approx(np.mean(d - hp["eps"] <= hp["eps"]))
        e = np.concatenate([est[i] for i in idx])
        assert stats[f"{block}/negative_share"] == pytest.approx(np.mean(e < 0))
        u = np.concatenate([upd[i] for i in idx])
        w = np.concatenate([theta[i] for i in idx])
        assert stats[f"{block}/update_ratio"] == pytest.approx(
            np.linalg.norm(u) / np.linalg.norm(w), rel=1e-9)
    assert 0 < stats["weights/eps_share"] < 1  # eps chosen so that it dominates some entries


def test_adamw_has_no_telemetry():
    p = torch.nn.Parameter(torch.ones(3))
    assert curvature_telemetry(torch.optim.AdamW([p]), {"p": p}, {"b": ["p"]}) == {}


def test_role_blocks_of_albert_and_bert_names():
    albert = [
        "albert.embeddings.word_embeddings.weight", "albert.embeddings.LayerNorm.bias",
        "albert.encoder.embedding_hidden_mapping_in.weight",
        "albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight",
        "albert.encoder.albert_layer_groups.0.albert_layers.0.attention.dense.bias",
        "albert.encoder.albert_layer_groups.0.albert_layers.0.attention.LayerNorm.weight",
        "albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight",
        "albert.encoder.albert_layer_groups.0.albert_layers.0.ffn_output.weight",
        "albert.encoder.albert_layer_groups.0.albert_layers.0.full_layer_layer_norm.bias",
        "qa_outputs.weight",
    ]
    bert = [
        "bert.embeddings.position_embeddings.weight",
        "bert.encoder.layer.0.attention.self.key.weight",
        "bert.encoder.layer.3.attention.self.key.weight",
        "bert.encoder.layer.0.attention.output.dense.weight",
        "bert.encoder.layer.0.attention.output.LayerNorm.weight",
        "bert.encoder.layer.0.intermediate.dense.weight",
        "bert.encoder.layer.0.output.dense.weight", "bert.encoder.layer.0.output.LayerNorm.bias",
        "bert.pooler.dense.weight", "something.else",
    ]
    roles = {b: [n.split(".")[-2] for n in ns] for b, ns in role_blocks(albert + bert).items()}
    assert list(roles) == [
        "word_embeddings", "position_embeddings", "embedding_layernorm", "embedding_projection",
        "query", "key", "attention_output", "attention_layernorm", "ffn_in", "ffn_out",
        "ffn_layernorm", "pooler", "qa_outputs", "other"]
    assert len(role_blocks(bert)["key"]) == 2  # pooled over layers
    assert role_blocks(bert)["attention_output"] == ["bert.encoder.layer.0.attention.output.dense.weight"]
    assert role_blocks(bert)["ffn_out"] == ["bert.encoder.layer.0.output.dense.weight"]
    assert role_blocks(bert)["ffn_layernorm"] == ["bert.encoder.layer.0.output.LayerNorm.bias"]
