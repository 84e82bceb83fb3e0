"""Our AdaHessian against the public ones, steps interleaved in one process (A/B/C/D).

    python scripts/bench_ab.py                 # ALBERT-base shape, CPU, batch 4 x 128, 1 thread
    python scripts/bench_ab.py --steps 8 --device cuda --batch-size 16 --seq-len 384

`make bench` times each setting in its own process, one after another, so a drift of the
machine (another job starting, the CPU clocking down) lands on some rows and not others. Here
every implementation has its own copy of the model (same weights, same batch) and the steps go
round-robin, so drift lands on all alike: the ratios resolve a few per cent. Timed per step:
forward, backward with the double-backward graph, ``step``, ``zero_grad``; the median over the
timed steps (the first, warm-up round is not timed). Implementations: ours as configured
(configs/optimizer/adahessian.yaml: spatial averaging over blocks of 32, signed estimate), ours
with the public implementations' algorithm (no averaging, |z*Hz|), pytorch_optimizer's
AdaHessian and torch_optimizer's Adahessian (each skipped if not installed). Writes
results/bench/adahessian_ab_<device>.json with the device, versions and this command.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from secondorder.experiments import bench
from secondorder.optim import build_optimizer
from secondorder.optim.protocol import attention_for

ROOT = Path(__file__).resolve().parents[1]


def ours(**overrides):
    def make(model):
        cfg = {**bench.optimizer_config("adahessian", None), **overrides}
        return build_optimizer(cfg, model, num_training_steps=100)
    return make


def public(package: str, cls: str, **kwargs):
    def make(model):  # the same decay / no-decay split and hyperparameters as ours
        cfg = bench.optimizer_config("adahessian", None)
        split = build_optimizer(bench.optimizer_config("adamw", None), model, num_training_steps=1)
        groups = [{"params": g["params"], "weight_decay": cfg["weight_decay"] if g["weight_decay"]
                   else 0.0} for g in split.param_groups]
        return getattr(importlib.import_module(package), cls)(
            groups, lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"],
            hessian_power=cfg["hessian_power"], **kwargs)
    return make


IMPLEMENTATIONS = {
    "ours": (None, ours()),
    "ours, public algorithm": (None, ours(block_size=1, average_abs=True)),
    "pytorch_optimizer.AdaHessian": ("pytorch_optimizer", public("pytorch_optimizer",
                                                                 "AdaHessian", update_period=1)),
    "torch_optimizer.Adahessian": ("torch_optimizer", public("torch_optimizer", "Adahessian",
                                                             seed=0)),
}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=4, help="timed rounds (after one warm-up round)")
    p.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    p.add_argument("--layers", type=int, default=None, help="num_hidden_layers (tiny shapes)")
    p.add_argument("--hidden", type=int, default=None, help="hidden size (tiny shapes)")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    a = p.parse_args(argv)
    if a.device == "cpu":
        torch.set_num_threads(a.threads)
    from transformers import AlbertConfig, AlbertForQuestionAnswering

    opts = argparse.Namespace(model=None, layers=a.layers, hidden=a.hidden, seq_len=a.seq_len,
                              attention="math")
    spec = bench.model_config(bench.load_yaml(bench.bench_config()), opts)
    config = AlbertConfig(**spec["config"])
    config._attn_implementation = spec["attn_implementation"]
    device = torch.device(a.device)
    batch = bench.make_batch(config.vocab_size, a.batch_size, a.seq_len, 0, device)
    runs, skipped = {}, []
    for name, (package, make) in IMPLEMENTATIONS.items():
        if package and not bench.package_available(package):
            skipped.append(name)
            continue
        torch.manual_seed(0)
        model = AlbertForQuestionAnswering(config).to(device).train()
        runs[name] = (model, make(model), [])
    for _ in range(a.steps + 1):
        for model, opt, times in runs.values():
            bench.synchronize(device)
            t0 = time.perf_counter()
            with attention_for(True):
                model(**batch).loss.backward(create_graph=True)
            opt.step()
            opt.zero_grad(set_to_none=True)
            bench.synchronize(device)
            times.append(time.perf_counter() - t0)
    medians = {n: statistics.median(t[1:]) for n, (_, _, t) in runs.items()}
    public_times = [v for n, v in medians.items() if not n.startswith("ours")]
    fastest = min(public_times) if public_times else None
    result = {
        "device": bench.device_name(a.device), "date": datetime.datetime.now(
            datetime.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "scripts/bench_ab.py", *(argv or sys.argv[1:])]),
        "env": bench.environment(argparse.Namespace(device=a.device)),
        "shape": {"batch_size": a.batch_size, "seq_len": a.seq_len, "model": spec["source"],
                  "num_hidden_layers": config.num_hidden_layers,
                  "hidden_size": config.hidden_size},
        "timed_rounds": a.steps, "skipped": skipped,
        "rows": [{"implementation": n, "step_times_s": runs[n][2][1:], "median_s": medians[n],
                  "ratio_to_fastest_public": medians[n] / fastest if fastest else None}
                 for n in runs],
    }
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"adahessian_ab_{bench.slug(result['device'])}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for r in result["rows"]:
        ratio = r["ratio_to_fastest_public"]
        print(f"{r['implementation']:32s} {r['median_s']:7.3f} s/step"
              + (f"  {ratio:.3f}x the fastest public one" if ratio else ""))
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
