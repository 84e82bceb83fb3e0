"""Where an AdaHessian step's time goes: our implementation against the public ones, op by op.

    python scripts/profile_adahessian.py                 # ALBERT-base shape, CPU, batch 4 x 128
    python scripts/profile_adahessian.py --layers 4      # quicker

Each implementation runs in a fresh process (same weights, same batch, math attention, one
torch thread), takes `--warmup` untimed steps and one step under `torch.profiler`; the table
is the self CPU time per operator. Wall-clock ratios between processes on a shared machine
move by 5-15 % from run to run (README, benchmarks); operator counts and the total operator
time show whether one implementation does more work than another. Writes
results/bench/adahessian_profile_<device>.json with the device, versions and this command.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

from secondorder.experiments import bench

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bench_ab import IMPLEMENTATIONS  # noqa: E402  (the same four, built the same way)

PUBLIC = tuple(name for name, (package, _) in IMPLEMENTATIONS.items() if package)


def build(name: str, model):
    """bench_ab.py's optimizer `name` (ours: configs/optimizer/adahessian.yaml, Hessian every
    step; the public ones: its hyperparameters and decay split), driven through the protocol."""
    package, make = IMPLEMENTATIONS[name]
    optimizer = make(model)
    return bench.CreateGraphDriver(optimizer, 1) if package else optimizer


def profile_one(name: str, layers: int, warmup: int) -> dict:
    """In this process: `warmup` steps, then one profiled step."""
    import yaml
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.profiler import ProfilerActivity, profile
    from transformers import AlbertConfig, AlbertForQuestionAnswering

    from secondorder.optim.protocol import backward_for_step, batch_loss

    warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True")
    torch.set_num_threads(1)
    arch = yaml.safe_load((ROOT / "configs" / "model" / "albert_base_shape.yaml").read_text())
    config = AlbertConfig(**{**arch["config"], "num_hidden_layers": layers})
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = AlbertForQuestionAnswering(config)
    model.train()
    batch = bench.make_batch(config.vocab_size, 4, 128, 0, "cpu")
    optimizer = build(name, model)

    def step():
        with sdpa_kernel(SDPBackend.MATH):
            loss, kwargs = backward_for_step(
                lambda b: batch_loss(model, b, "cpu", contextlib.nullcontext), batch, optimizer)
            optimizer.step(lambda: loss, **kwargs)
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    wall = time.perf_counter() - start
    ops = [{"op": e.key, "calls": e.count, "self_cpu_s": e.self_cpu_time_total / 1e6}
           for e in prof.key_averages() if e.key.startswith("aten::")]
    ops.sort(key=lambda r: -r["self_cpu_s"])
    return {"implementation": name, "profiled_step_wall_s": wall,
            "aten_self_cpu_s": sum(r["self_cpu_s"] for r in ops),
            "aten_calls": sum(r["calls"] for r in ops), "top_ops": ops[:12]}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=12, help="num_hidden_layers (ALBERT-base: 12)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--only", default=None, help=argparse.SUPPRESS)  # the child process
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    a = p.parse_args(argv)
    if a.only:
        print("PROFILE " + json.dumps(profile_one(a.only, a.layers, a.warmup)))
        return {}
    rows, skipped = [], []
    for name, (package, _) in IMPLEMENTATIONS.items():
        if package and not bench.package_available(package):
            skipped.append(name)
            continue
        print(f"profiling {name} ...", flush=True)
        out = subprocess.run([sys.executable, __file__, "--only", name, "--layers", str(a.layers),
                              "--warmup", str(a.warmup)], capture_output=True, text=True,
                             check=True).stdout
        rows.append(json.loads(out.split("PROFILE ", 1)[1]))
    fastest = min((r["aten_self_cpu_s"] for r in rows if r["implementation"] in PUBLIC),
                  default=float("nan"))
    for r in rows:
        r["aten_self_cpu_ratio_to_fastest_public"] = r["aten_self_cpu_s"] / fastest
        print(f"{r['implementation']:32s} operator time {r['aten_self_cpu_s']:7.2f} s "
              f"({r['aten_self_cpu_ratio_to_fastest_public']:.3f}x the fastest public), "
              f"{r['aten_calls']} calls, profiled step {r['profiled_step_wall_s']:.2f} s")
    result = {
        "device": bench.device_name("cpu"),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "scripts/profile_adahessian.py", *(argv or sys.argv[1:])]),
        "env": bench.environment(argparse.Namespace(device="cpu")),
        "shape": {"batch_size": 4, "seq_len": 128, "num_hidden_layers": a.layers,
                  "model": "configs/model/albert_base_shape.yaml", "attention": "math"},
        "rows": rows, "skipped": skipped,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"adahessian_profile_{bench.slug(result['device'])}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
