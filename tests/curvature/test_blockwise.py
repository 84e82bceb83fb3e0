"""Model Hessian operators against explicit float64 Hessians; ALBERT block partition."""

from __future__ import annotations

import fnmatch

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from secondorder.curvature.blocks import default_albert_blocks, resolve_blocks
from secondorder.curvature.blockwise import blockwise_spectra, full_spectrum
from secondorder.curvature.operators import ModelHessian


def loss_fn(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


@pytest.fixture(scope="module")
def mlp_setup():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(3, 4), nn.Tanh(), nn.Dropout(0.5), nn.Linear(4, 3), nn.Softplus(), nn.Linear(3, 2)
    ).double()
    g = torch.Generator().manual_seed(1)
    batches = [
        (
            torch.randn(6, 3, generator=g, dtype=torch.float64),
            torch.randint(0, 2, (6,), generator=g),
        )
        for _ in range(3)
    ]
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    ref_model = nn.Sequential(*[m for m in model if not isinstance(m, nn.Dropout)])
    ref_names = {  # parameter names once Dropout (index 2) is removed
        "0.weight": "0.weight",
        "0.bias": "0.bias",
        "3.weight": "2.weight",
        "3.bias": "2.bias",
        "5.weight": "4.weight",
        "5.bias": "4.bias",
    }

    def mean_loss(flat):
        parts = torch.split(flat, sizes)
        params = {ref_names[n]: t.reshape(s) for n, t, s in zip(names, parts, shapes, strict=True)}
        total = 0.0
        for x, y in batches:
            total = total + nn.functional.cross_entropy(functional_call(ref_model, params, (x,)), y)
        return total / len(batches)

    h_ref = torch.autograd.functional.hessian(mean_loss, flat0)
    offsets = dict(zip(names, np.cumsum([0, *sizes[:-1]]).tolist(), strict=True))
    index = {n: torch.arange(offsets[n], offsets[n] + s) for n, s in zip(names, sizes, strict=True)}
    return model, batches, h_ref, index


def explicit(matvec, dim):
    cols = [matvec(torch.eye(dim, dtype=torch.float64)[i]) for i in range(dim)]
    return torch.stack(cols, dim=1)


def test_full_operator_equals_full_hessian(mlp_setup):
    model, batches, h_ref, _ = mlp_setup
    model.train()
    hess = ModelHessian(model, loss_fn, batches)
    assert hess.dim == h_ref.shape[0]
    h = explicit(hess.matvec, hess.dim)
    torch.testing.assert_close(h, h_ref, rtol=1e-10, atol=1e-12)
    assert model.training  # the training flag is restored (dropout was off during products)
    assert all(m.training for m in model.modules())


def test_block_operators_equal_principal_submatrices(mlp_setup):
    model, batches, h_ref, index = mlp_setup
    hess = ModelHessian(model, loss_fn, batches)
    for glob, names in (
        ("0.weight", ["0.weight"]),
        ("3.*", ["3.weight", "3.bias"]),
        ("5.bias", ["5.bias"]),
    ):
        op = hess.block_operator(glob)
        assert op.names == names
        idx = torch.cat([index[n] for n in names])
        h_ll = explicit(op.matvec, op.dim)
        torch.testing.assert_close(h_ll, h_ref[idx][:, idx], rtol=1e-10, atol=1e-12)


def test_lockstep_blocks_are_exact_unlike_a_stacked_product(mlp_setup):
    model, batches, h_ref, index = mlp_setup
    hess = ModelHessian(model, loss_fn, batches)
    g = torch.Generator().manual_seed(2)
    a, b = ["0.weight"], ["3.weight"]
    va = torch.randn(12, generator=g, dtype=torch.float64)
    vb = torch.randn(12, generator=g, dtype=torch.float64)
    out = hess.block_matvecs({"a": (a, va), "b": (b, vb)})
    ia, ib = index["0.weight"], index["3.weight"]
    torch.testing.assert_close(out["a"], h_ref[ia][:, ia] @ va, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out["b"], h_ref[ib][:, ib] @ vb, rtol=1e-10, atol=1e-12)
    # the naive alternative -- one product of the stacked vector -- leaks H_ab v_b into block a
    stacked = torch.zeros(hess.dim, dtype=torch.float64)
    stacked[ia], stacked[ib] = va, vb
    naive = hess.matvec(stacked)[ia]
    assert (naive - out["a"]).abs().max() > 1e-3 * out["a"].abs().max()


def test_blockwise_spectra_recover_exact_block_eigenvalues(mlp_setup):
    model, batches, h_ref, index = mlp_setup
    blocks = {"first": ["0.*"], "last": ["5.weight"]}
    res = blockwise_spectra(
        model, loss_fn, batches, blocks, num_steps=50, num_runs=2, seed=0, grid_points=3000
    )
    assert set(res.blocks) == {"first", "last"}
    for name, names in (("first", ["0.weight", "0.bias"]), ("last", ["5.weight"])):
        idx = torch.cat([index[n] for n in names])
        eig = torch.linalg.eigvalsh(h_ref[idx][:, idx]).numpy()
        est = res.blocks[name]
        assert est.dim == idx.numel() and est.params == names
        # num_steps >= block dim: Lanczos finds the whole spectrum (breakdown or full basis)
        assert est.lambda_max == pytest.approx(eig.max(), rel=1e-8, abs=1e-10)
        assert est.lambda_min == pytest.approx(eig.min(), rel=1e-8, abs=1e-10)
        for run in est.runs:  # each Ritz value is an eigenvalue of H_ll
            assert np.abs(run.nodes[:, None] - eig[None, :]).min(axis=1).max() < 1e-8
        assert np.trapezoid(est.density, res.grid) == pytest.approx(1.0, abs=1e-3)
        m1 = np.trapezoid(res.grid * est.density, res.grid)
        v_mean = np.mean([np.sum(r.weights * r.nodes) for r in est.runs])
        assert m1 == pytest.approx(v_mean, abs=1e-6)
    grid, full = full_spectrum(model, loss_fn, batches, num_steps=60, num_runs=1, seed=0)
    eig = torch.linalg.eigvalsh(h_ref).numpy()
    assert full.lambda_max == pytest.approx(eig.max(), rel=1e-8)
    assert full.lambda_min == pytest.approx(eig.min(), rel=1e-8, abs=1e-10)


def test_resolve_blocks_reports_overlaps_and_unmatched():
    names = ["a.weight", "a.bias", "b.weight"]
    got, unmatched = resolve_blocks(names, {"A": ["a.*"]})
    assert got == {"A": ["a.weight", "a.bias"]} and unmatched == ["b.weight"]
    with pytest.raises(ValueError, match="matches blocks"):
        resolve_blocks(names, {"A": ["a.*"], "W": ["*.weight"]})
    with pytest.raises(ValueError, match="match no parameter"):
        resolve_blocks(names, {"A": ["a.*"], "Z": ["z.*"]})


def tiny_albert_config(**kw):
    from transformers import AlbertConfig

    cfg = dict(
        vocab_size=40,
        embedding_size=8,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=16,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    cfg.update(kw)
    return AlbertConfig(**cfg)


def _assert_partition(model, blocks):
    names = [n for n, _ in model.named_parameters()]
    for n in names:
        owners = [b for b, pats in blocks.items() if any(fnmatch.fnmatchcase(n, p) for p in pats)]
        assert len(owners) == 1, (n, owners)
    resolved, unmatched = resolve_blocks(names, blocks)
    assert unmatched == []
    assert sorted(n for ns in resolved.values() for n in ns) == sorted(names)
    return resolved


def test_default_albert_blocks_partition_qa_model():
    from transformers import AlbertForQuestionAnswering

    model = AlbertForQuestionAnswering(tiny_albert_config())
    blocks = default_albert_blocks(model, strict=True)
    resolved = _assert_partition(model, blocks)
    assert list(blocks) == [
        "word_embeddings",
        "position_embeddings",
        "token_type_embeddings",
        "embedding_layernorm",
        "embedding_projection",
        "query",
        "key",
        "value",
        "attention_output",
        "attention_layernorm",
        "ffn_in",
        "ffn_out",
        "ffn_layernorm",
        "qa_outputs",
    ]
    assert resolved["ffn_in"] == [
        "albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight",
        "albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.bias",
    ]
    assert resolved["query"][0].endswith("attention.query.weight")


def test_default_albert_blocks_base_model_and_several_groups():
    from transformers import AlbertModel

    model = AlbertModel(tiny_albert_config(num_hidden_groups=2, inner_group_num=1))
    blocks = default_albert_blocks(model, strict=True)
    _assert_partition(model, blocks)
    assert "pooler" in blocks and "group1.layer0.query" in blocks and "query" not in blocks

    class WithExtra(nn.Module):
        def __init__(self):
            super().__init__()
            self.albert = AlbertModel(tiny_albert_config())
            self.extra = nn.Linear(2, 2)

    with pytest.raises(ValueError, match="extra.weight"):
        default_albert_blocks(WithExtra(), strict=True)
    with pytest.warns(UserWarning, match="extra.bias"):
        default_albert_blocks(WithExtra())


def test_albert_hessian_products_with_sdpa_attention():
    """Double backward through HF ALBERT's SDPA attention (MATH kernel); finite-difference check."""
    from transformers import AlbertForQuestionAnswering

    torch.manual_seed(0)
    cfg = tiny_albert_config()
    cfg._attn_implementation = "sdpa"
    model = AlbertForQuestionAnswering(cfg).double()
    model.train()  # dropout on: the operator must switch it off
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 40, (3, 10), generator=g)
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "start_positions": torch.tensor([1, 2, 0]),
        "end_positions": torch.tensor([3, 4, 0]),
    }

    def qa_loss(m, b):
        return m(**b).loss

    hess = ModelHessian(model, qa_loss, [batch])
    blocks = default_albert_blocks(model)
    op = hess.block_operator(blocks["query"])
    u = torch.randn(op.dim, generator=g, dtype=torch.float64)
    v = torch.randn(op.dim, generator=g, dtype=torch.float64)
    hu, hv = op.matvec(u), op.matvec(v)
    assert float(u @ hv) == pytest.approx(float(v @ hu), rel=1e-9)
    assert torch.equal(op.matvec(v), hv)  # deterministic: dropout is off
    # central differences of the block gradient along v (eval mode, as the operator)
    params = [dict(model.named_parameters())[n] for n in op.names]

    def block_grad():
        model.eval()
        loss = qa_loss(model, batch)
        return torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, params)])

    eps = 1e-5
    with torch.no_grad():
        offsets = torch.split(v, [p.numel() for p in params])
        for p, d in zip(params, offsets, strict=True):
            p.add_(eps * d.reshape(p.shape))
    g_plus = block_grad()
    with torch.no_grad():
        for p, d in zip(params, offsets, strict=True):
            p.sub_(2 * eps * d.reshape(p.shape))
    g_minus = block_grad()
    with torch.no_grad():
        for p, d in zip(params, offsets, strict=True):
            p.add_(eps * d.reshape(p.shape))
    fd = (g_plus - g_minus) / (2 * eps)
    torch.testing.assert_close(hv, fd, rtol=1e-5, atol=1e-7 * float(hv.abs().max()))
