"""What only a GPU can check (`pytest -m gpu`; `make gpu-check` runs them). Skipped without CUDA.

CUDA Rademacher generators and their state in checkpoints, bf16 and fp16 autocast through the
curvature optimizers, the math-SDPA switch on curvature steps, and the CUDA memory counters the
training logs carry.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True"),
]


def tiny_albert(attn="sdpa"):
    from transformers import AlbertConfig, AlbertForQuestionAnswering

    config = AlbertConfig(vocab_size=300, embedding_size=32, hidden_size=64, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=128,
                          max_position_embeddings=64, hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0)
    config._attn_implementation = attn
    torch.manual_seed(0)
    return AlbertForQuestionAnswering(config).cuda()


def batch(n=4, length=48):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 300, (n, length), generator=g)
    return {"input_ids": ids.cuda(), "attention_mask": torch.ones_like(ids).cuda(),
            "start_positions": torch.randint(0, length, (n,), generator=g).cuda(),
            "end_positions": torch.randint(0, length, (n,), generator=g).cuda()}


def steps(model, opt, n, dtype=None):
    from secondorder.optim.protocol import backward_for_step

    def loss_fn(b):
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            return model(**b).loss.float()

    for _ in range(n):
        backward_for_step(loss_fn, batch(), opt)
        opt.step()
        opt.zero_grad(set_to_none=True)


def test_cuda_rademacher_stream_lives_on_the_gpu_and_resumes_bit_identically():
    from secondorder.optim import AdaHessian

    model = tiny_albert()
    opt = AdaHessian(model.parameters(), lr=1e-3, seed=3)
    steps(model, opt, 2)
    assert list(opt._generators) == ["cuda:0"]
    saved = ({k: v.clone() for k, v in model.state_dict().items()}, opt.state_dict())
    steps(model, opt, 2)
    straight = [p.detach().clone() for p in model.parameters()]
    again = tiny_albert()
    again.load_state_dict(saved[0])
    opt2 = AdaHessian(again.parameters(), lr=1e-3, seed=3)
    opt2.load_state_dict(saved[1])
    steps(again, opt2, 2)
    for p, q in zip(again.parameters(), straight, strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name", ["adahessian", "adasub"])
def test_bf16_autocast_keeps_fp32_state_and_finite_weights(name):
    from secondorder.optim import build_optimizer

    model = tiny_albert()
    opt = build_optimizer({"name": name, "lr": 1e-3}, model, num_training_steps=10)
    steps(model, opt, 3, dtype=torch.bfloat16)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    for state in opt.state.values():
        for v in state.values():
            if torch.is_tensor(v) and v.is_floating_point():
                assert v.dtype in (torch.float32, torch.float64)


def test_math_sdpa_on_curvature_steps_and_fused_kernels_elsewhere():
    from secondorder.optim.protocol import attention_for

    model = tiny_albert("sdpa")
    b = batch()
    loss = model(**b).loss  # a first-order step: whatever kernel SDPA picks
    loss.backward()
    model.zero_grad(set_to_none=True)
    with attention_for(True):  # the double backward needs the math kernel
        loss = model(**b).loss
        grads = torch.autograd.grad(loss, list(model.parameters()), create_graph=True)
        hv = torch.autograd.grad(grads, list(model.parameters()),
                                 grad_outputs=[torch.ones_like(g) for g in grads],
                                 allow_unused=True)
    assert any(h is not None and torch.isfinite(h).all() for h in hv)
    assert attention_for(False).__class__.__name__ == "nullcontext"


def test_training_logs_cuda_memory_counters(tmp_path):
    from hydra import compose, initialize_config_dir

    from secondorder.runs import read_jsonl
    from secondorder.train import run
    from tiny import TINY

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, f"results_root={tmp_path}",
                                          f"cache_dir={tmp_path / 'cache'}",
                                          "optimizer=adahessian", "trainer.epochs=1"])
    run(cfg)
    record = read_jsonl(Path(cfg.run_dir) / "metrics.jsonl")[-1]
    assert record["gpu_mem_peak_allocated_gib"] > 0
    assert record["gpu_mem_peak_reserved_gib"] >= record["gpu_mem_peak_allocated_gib"]
