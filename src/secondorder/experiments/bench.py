"""Per-step cost of every optimizer setting, as ratios to AdamW measured in the same run.

What is measured
    One training step (forward, backward -- with the double-backward graph on the steps where
    the optimizer asks for curvature --, ``optimizer.step``, ``zero_grad``) of
    ``AlbertForQuestionAnswering`` with the albert-base-v2 architecture and random weights
    (``configs/model/albert_base_shape.yaml``; weights do not change the cost) on one random
    batch, driven exactly as training drives it (``secondorder.optim.protocol.backward_for_step``).
    Every setting of ``configs/bench/step_cost.yaml`` gets a fresh model (same seed), ``warmup``
    untimed steps (after which the optimizer state exists), then ``steps`` timed steps (a
    multiple of the longest refresh period: ``hessian_interval``, SOAP's
    ``precondition_frequency`` or Shampoo's ``preconditioning_compute_steps``, so delayed
    settings average over whole cycles). Reported per setting: mean and median seconds per step
    and peak memory, each also as a ratio to AdamW of the same run (to bf16 AdamW for bf16 rows).

    Memory on CUDA: ``torch.cuda.max_memory_allocated`` (the primary ``memory_ratio``) and
    ``max_memory_reserved``, peaks reset after warm-up. On CPU each setting runs in its own
    process (this script with ``--single``): its peak resident set size (``ru_maxrss``: the
    interpreter, libraries, model, gradients, optimizer state and activations; it includes the
    warm-up steps, which peak like the timed ones) is the primary ``memory_ratio``, and the peak
    above the RSS measured right after the model and batch were built is reported beside it.

How to run it
    python scripts/bench_step.py                  # GPU if there is one: batch 16, length 384
    python scripts/bench_step.py --bf16           # and every setting again under bf16 autocast
    python scripts/bench_step.py --device cpu     # CPU: batch 4, length 128 by default
    python scripts/bench_step.py --settings adamw,adahessian --steps 20
    python scripts/bench_step.py --device cpu --model albert_tiny --batch-size 32 \\
        --seq-len 128                             # the demo's model (results/bench/*_albert_tiny)
    python scripts/bench_step.py --layers 2 --hidden 64 --batch-size 2 --seq-len 32 \\
        --steps 2 --warmup 1                      # a smoke run of seconds
    python scripts/bench_step.py --device cpu --rounds 3 --settings adamw,adahessian,...
                                                  # every setting 3 times, interleaved

    Rounds (``--rounds R``): every setting is measured R times, round by round, the order
    reversed every other round (A B C, C B A, A B C), so that a drift of the machine lands on
    all settings alike rather than on the ones that happened to run during it. A row's times
    pool the timed steps of all rounds; ``round_time_ratios`` is its ratio to the baseline
    within each round (one number per round: their spread is the run's resolution). Peak
    memory is the largest over the rounds. On CPU a row also reports the minor page faults per
    timed step (``minor_faults_per_step``: fresh pages the process had to map, the cost of an
    allocation pattern that returns memory to the system and takes it back every step).

    Writes results/bench/step_cost_<device>.json (device, versions, command line, shape, date,
    rows) and .md (the table, also printed). On a GPU the default run is 7 settings of 13 steps
    each at batch 16 x 384, a few minutes at most.

Targets (one H100, fp32, batch 16, length 384, eager/math attention)
    AdaHessian (Hessian every step, full batch)  <= 3.3x AdamW time, <= 2.0x AdamW memory
    AdaHessian hessian_interval=5                <= 1.5x AdamW time
    AdaHessian hessian_batch_fraction=0.25       <= 1.8x AdamW time, <= 1.4x AdamW memory
    Public implementations measured there: official AdaHessian / torch_optimizer 3.30x time,
    3.38x memory; pytorch_optimizer 3.30x time, 2.34x memory. The JSON says whether each target
    is met only when the run matches those conditions (CUDA, fp32, 16 x 384, math/eager attention).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib
import importlib.metadata
import importlib.util
import json
import math
import re
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from secondorder.environment import device_name
from secondorder.environment import environment as environment_of
from secondorder.optim import CurvatureOptimizer, build_optimizer
from secondorder.optim.protocol import backward_for_step, batch_loss
from secondorder.paths import configs_dir, project_root

SCRIPT = "scripts/bench_step.py"  # the entry point, as users type it
GIB = 1024**3
SINGLE_KEY = "bench_step_single"  # the child's one JSON line: {"bench_step_single": {...}}
# memory metrics per device type; the first one is the primary `memory_ratio`
MEMORY_METRICS = {
    "cuda": ("max_memory_allocated_gib", "max_memory_reserved_gib"),
    "cpu": ("peak_rss_gib", "peak_rss_above_model_gib"),
}
MEMORY_NOTES = {
    "cuda": (
        "max_memory_allocated_gib: peak of live tensors (torch.cuda.max_memory_allocated) over "
        "the timed steps, reset after warm-up: model, gradients, optimizer state, activations "
        "and the double-backward graph. max_memory_reserved_gib: what the caching allocator held "
        "from the driver over the same steps. memory_ratio is max_memory_allocated's ratio."
    ),
    "cpu": (
        "Each setting runs in its own process. peak_rss_gib: the process's peak resident set "
        "size (ru_maxrss) at the end: interpreter, torch/transformers libraries, model, "
        "gradients, optimizer state, activations and the double-backward graph, plus memory the "
        "C allocator kept after freeing; it covers the warm-up steps too (they peak like the "
        "timed ones). peak_rss_above_model_gib: peak_rss_gib minus the RSS right after the model "
        "and the batch were built (model_rss_gib), i.e. what training adds. memory_ratio is "
        "peak_rss_gib's ratio; the fixed library footprint pulls it towards 1."
    ),
}


# --------------------------------------------------------------------------- configuration
def bench_config() -> Path:
    return configs_dir() / "bench" / "step_cost.yaml"


def load_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise SystemExit(f"bench_step: {path} does not exist")
    out = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    assert isinstance(out, dict)
    return out


def optimizer_config(name: str, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """configs/optimizer/<name>.yaml with `overrides` applied (build_optimizer checks the keys)."""
    cfg = load_yaml(configs_dir() / "optimizer" / f"{name}.yaml")
    return {**cfg, **(overrides or {})}


def model_config(bench: dict, opts: argparse.Namespace) -> dict[str, Any]:
    name = opts.model or bench["model"]
    path = configs_dir() / "model" / f"{name}.yaml"
    if not path.exists():
        raise SystemExit(f"bench_step: --model {name}: no {path.relative_to(project_root())}")
    cfg = load_yaml(path)
    if cfg.get("pretrained"):
        raise SystemExit(f"bench_step: --model {name} is a pretrained checkpoint; the benchmark "
                         "builds models from configs (e.g. albert_base_shape, albert_tiny)")
    config = dict(cfg["config"])
    # a model trained with a local tokenizer takes its vocabulary size from it
    config.setdefault("vocab_size", int(cfg.get("tokenizer", {}).get("vocab_size", 30000)))
    if opts.layers is not None:
        config["num_hidden_layers"] = opts.layers
    if opts.hidden is not None:
        heads = max(1, opts.hidden // 64)
        if opts.hidden % heads:
            raise SystemExit(f"bench_step: --hidden {opts.hidden} does not split into {heads} "
                             "heads (use a multiple of 64, or 64 or less)")
        config.update(hidden_size=opts.hidden, intermediate_size=4 * opts.hidden,
                      num_attention_heads=heads,
                      embedding_size=min(int(config["embedding_size"]), opts.hidden))
    if opts.seq_len > int(config["max_position_embeddings"]):
        raise SystemExit(f"bench_step: --seq-len {opts.seq_len} exceeds max_position_embeddings "
                         f"{config['max_position_embeddings']}")
    attn = "eager" if opts.attention == "eager" else cfg.get("attn_implementation", "sdpa")
    return {"config": config, "attn_implementation": attn,
            "source": f"configs/model/{name}.yaml"}


def package_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def plan(bench: dict, selected: list[str] | None, bf16: bool,
         add_baseline: bool = True) -> tuple[list[dict], list[dict]]:
    """The rows to measure (fp32, then bf16 if asked) and the comparisons skipped, with reasons."""
    settings = {s["name"]: s for s in bench["settings"]}
    comparisons = {c["name"]: c for c in bench.get("comparisons") or []}
    names = list(selected) if selected else [*settings, *comparisons]
    unknown = [n for n in names if n not in settings and n not in comparisons]
    if unknown:
        raise SystemExit(f"bench_step: unknown setting(s) {unknown}; "
                         f"known: {[*settings, *comparisons]}")
    baseline = bench["baseline"]
    if add_baseline and baseline not in names:
        print(f"bench_step: adding the baseline '{baseline}' (ratios need it)", file=sys.stderr)
        names.insert(0, baseline)
    names.sort(key=lambda n: n != baseline)  # the baseline first
    rows, skipped = [], []
    for name in names:
        if name in settings:
            s = settings[name]
            row = {"setting": name, "kind": "secondorder", "label": s.get("label", name),
                   "optimizer": optimizer_config(s["optimizer"], s.get("overrides")),
                   "target": s.get("target")}
            row["curvature_every"] = int(row["optimizer"].get("hessian_interval", 1))
            # steps between refreshes of the preconditioner (a Hessian, an eigenbasis, a root)
            row["period"] = int(next((row["optimizer"][k] for k in PERIOD_KEYS
                                      if k in row["optimizer"]), 1))
        else:
            c = comparisons[name]
            if not package_available(c["package"]):
                skipped.append({"setting": name, "reason": f"package {c['package']!r} is not "
                                f"importable (pip install --no-deps {c['package']} to time it)"})
                continue
            like = settings[c["like"]]
            source = optimizer_config(like["optimizer"], like.get("overrides"))
            kwargs = {k: source[k] for k in c.get("copy", []) if k in source}
            row = {"setting": name, "kind": "comparison", "label": c.get("label", name),
                   "package": c["package"], "class": c.get("class", "AdaHessian"),
                   "optimizer": {**kwargs, **(c.get("kwargs") or {})},
                   "curvature_every": int(c.get("curvature_every", 1)), "target": c.get("target")}
            row["period"] = row["curvature_every"]
        rows.append(row)
    out = [{**r, "precision": "fp32", "baseline": baseline} for r in rows]
    if bf16:
        out += [{**r, "setting": f"{r['setting']}+bf16", "precision": "bf16",
                 "baseline": f"{baseline}+bf16"} for r in rows]
    return out, skipped


# the optimizer keys that say how often a preconditioner is refreshed: ours (Sophia-H, AdaHessian),
# SOAP's eigenbases and Shampoo's inverse roots (pytorch_optimizer)
PERIOD_KEYS = ("hessian_interval", "precondition_frequency", "preconditioning_compute_steps")


def whole_periods(rows: list[dict], steps: int) -> int:
    """`steps` rounded up to a multiple of the longest refresh period among `rows` (PERIOD_KEYS),
    so that every mean covers whole periods."""
    longest = max(r["period"] for r in rows)
    return math.ceil(steps / longest) * longest


# --------------------------------------------------------------------------- one setting
class CreateGraphDriver:
    """Drives an optimizer that wants `loss.backward(create_graph=True)` before the steps that
    refresh its Hessian (pytorch_optimizer's AdaHessian), through the trainer protocol."""

    hessian_batch_fraction = 1.0

    def __init__(self, optimizer: torch.optim.Optimizer, curvature_every: int):
        self.optimizer, self.every, self.steps = optimizer, curvature_every, 0

    def needs_curvature(self) -> bool:
        return self.steps % self.every == 0

    def step(self, closure=None, **_):
        self.steps += 1
        return self.optimizer.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)


def make_optimizer(row: dict, model: torch.nn.Module, total_steps: int):
    if row["kind"] == "secondorder":
        return build_optimizer(row["optimizer"], model, num_training_steps=total_steps)
    # the repo's decay / no-decay split, taken from an AdamW built by the registry
    split = build_optimizer(optimizer_config("adamw", None), model, num_training_steps=total_steps)
    wd = float(row["optimizer"].get("weight_decay", 0.0))
    groups = [{"params": g["params"], "weight_decay": wd if g["weight_decay"] else 0.0}
              for g in split.param_groups]
    kwargs = {k: v for k, v in row["optimizer"].items() if k != "weight_decay"}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    cls = getattr(importlib.import_module(row["package"]), row["class"])
    return CreateGraphDriver(cls(groups, weight_decay=wd, **kwargs), row["curvature_every"])


def make_batch(vocab_size: int, batch_size: int, seq_len: int, seed: int, device) -> dict:
    gen = torch.Generator().manual_seed(seed)
    batch = {
        "input_ids": torch.randint(0, vocab_size, (batch_size, seq_len), generator=gen),
        "token_type_ids": torch.zeros(batch_size, seq_len, dtype=torch.long),
        "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long),
        "start_positions": torch.randint(0, seq_len, (batch_size,), generator=gen),
        "end_positions": torch.randint(0, seq_len, (batch_size,), generator=gen),
    }
    return {k: v.to(device) for k, v in batch.items()}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def minor_faults() -> int:
    """Minor page faults of this process so far (pages mapped on first touch)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def peak_rss_bytes() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def measure(row: dict, model_spec: dict, opts: argparse.Namespace) -> dict[str, Any]:
    """Time `opts.steps` steps of one setting after `opts.warmup` untimed ones, in this process."""
    from transformers import AlbertConfig, AlbertForQuestionAnswering

    # the benchmark builds create_graph=True backward graphs on purpose, as training does; the
    # optimizers free them (zero_grad(set_to_none=True)) after every step
    warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True")
    device = torch.device(opts.device)
    config = AlbertConfig(**model_spec["config"])
    config._attn_implementation = model_spec["attn_implementation"]
    torch.manual_seed(opts.seed)
    model = AlbertForQuestionAnswering(config).to(device)
    model.train()
    batch = make_batch(config.vocab_size, opts.batch_size, opts.seq_len, opts.seed, device)
    synchronize(device)
    out: dict[str, Any] = {"parameters": sum(p.numel() for p in model.parameters())}
    if device.type == "cuda":
        out["model_allocated_gib"] = torch.cuda.memory_allocated(device) / GIB
    else:
        out["model_rss_gib"] = rss_bytes() / GIB
    optimizer = make_optimizer(row, model, opts.warmup + opts.steps)
    if row["precision"] == "bf16":
        def autocast():
            return torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext
    if opts.attention == "math":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        def attention():
            return sdpa_kernel(SDPBackend.MATH)
    else:
        attention = contextlib.nullcontext

    def loss_fn(b):
        return batch_loss(model, b, device, autocast)

    def one_step() -> tuple[bool, torch.Tensor]:
        curvature = isinstance(optimizer, CurvatureOptimizer) and optimizer.needs_curvature()
        with attention():
            loss, step_kwargs = backward_for_step(loss_fn, batch, optimizer)
            optimizer.step(lambda: loss, **step_kwargs)
        optimizer.zero_grad(set_to_none=True)
        return curvature, loss

    for _ in range(opts.warmup):
        one_step()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, curvature_steps, loss = [], 0, None
    faults = minor_faults()
    for _ in range(opts.steps):
        start = time.perf_counter()
        curvature, loss = one_step()
        synchronize(device)
        times.append(time.perf_counter() - start)
        curvature_steps += curvature
    faults = minor_faults() - faults
    out.update(step_times_s=times, step_time_mean_s=statistics.fmean(times),
               step_time_median_s=statistics.median(times), curvature_steps=curvature_steps,
               final_loss=float(loss) if loss is not None else None,
               minor_faults_per_step=faults / opts.steps)
    if device.type == "cuda":
        out["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated(device) / GIB
        out["max_memory_reserved_gib"] = torch.cuda.max_memory_reserved(device) / GIB
    else:
        out["peak_rss_gib"] = peak_rss_bytes() / GIB
        out["peak_rss_above_model_gib"] = out["peak_rss_gib"] - out["model_rss_gib"]
    return out  # the model, optimizer and batch go with this frame; free_memory() reclaims them


def free_memory(device_type: str) -> None:
    gc.collect()
    if device_type == "cuda":
        torch.cuda.empty_cache()


def child_argv(opts: argparse.Namespace, setting: str) -> list[str]:
    argv = [sys.executable, "-m", __name__, "--single", setting,
            "--config", str(opts.config), "--device", opts.device,
            "--batch-size", str(opts.batch_size), "--seq-len", str(opts.seq_len),
            "--steps", str(opts.steps), "--warmup", str(opts.warmup),
            "--attention", opts.attention, "--seed", str(opts.seed)]
    for flag, value in (("--layers", opts.layers), ("--hidden", opts.hidden),
                        ("--model", opts.model)):
        if value is not None:
            argv += [flag, str(value)]
    if setting.endswith("+bf16"):
        argv.append("--bf16")
    return argv


def measure_in_child(row: dict, opts: argparse.Namespace) -> dict[str, Any]:
    """Run one setting in a fresh process (its peak RSS is that setting's alone)."""
    proc = subprocess.run(child_argv(opts, row["setting"]), stdout=subprocess.PIPE, text=True,
                          cwd=project_root(), check=False)  # stderr passes through
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{") and SINGLE_KEY in line:
            return json.loads(line)[SINGLE_KEY]
    raise RuntimeError(f"the --single {row['setting']} process exited with code "
                       f"{proc.returncode} without a result (its error is above)")


# --------------------------------------------------------------------------- the report
def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def environment(opts: argparse.Namespace) -> dict[str, Any]:
    """A run's environment (secondorder.environment), with pytorch_optimizer's version and the
    checkout's git commit."""
    env = environment_of(opts.device)
    with contextlib.suppress(Exception):
        env["pytorch_optimizer"] = importlib.metadata.version("pytorch_optimizer")
    with contextlib.suppress(Exception):
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=project_root(), capture_output=True,
                               text=True, check=True).stdout.strip()
        env["git_commit"] = head + ("-dirty" if dirty else "")
    return env


def pool_rounds(rounds: list[dict], device_type: str) -> dict[str, Any]:
    """One row from a setting's measurement in each round: the timed steps of all rounds
    pooled, the largest memory peak, the mean page faults; per-round means kept."""
    if len(rounds) == 1:
        return rounds[0]
    times = [t for r in rounds for t in r["step_times_s"]]
    out = {**rounds[-1], "step_times_s": times, "step_time_mean_s": statistics.fmean(times),
           "step_time_median_s": statistics.median(times),
           "curvature_steps": sum(r["curvature_steps"] for r in rounds),
           "round_step_time_mean_s": [r["step_time_mean_s"] for r in rounds]}
    for key in (*MEMORY_METRICS[device_type], "model_rss_gib", "model_allocated_gib"):
        if key in rounds[0]:
            out[key] = max(r[key] for r in rounds)
    if "minor_faults_per_step" in rounds[0]:
        out["minor_faults_per_step"] = statistics.fmean(r["minor_faults_per_step"] for r in rounds)
    return out


def add_ratios(rows: list[dict], device_type: str) -> None:
    """time_ratio, *_ratio and memory_ratio of every measured row against its baseline row;
    with several rounds also round_time_ratios (the ratio within each round)."""
    by_name = {r["setting"]: r for r in rows}
    metrics = MEMORY_METRICS[device_type]
    for row in rows:
        base = by_name.get(row["baseline"])
        ok = row["status"] == "ok" and base is not None and base["status"] == "ok"
        if ok and "round_step_time_mean_s" in row:
            row["round_time_ratios"] = [t / b for t, b in zip(
                row["round_step_time_mean_s"], base["round_step_time_mean_s"], strict=True)]
        row["time_ratio"] = row["step_time_mean_s"] / base["step_time_mean_s"] if ok else None
        row["median_time_ratio"] = (row["step_time_median_s"] / base["step_time_median_s"]
                                    if ok else None)
        for m in metrics:
            key = m.removesuffix("_gib") + "_ratio"
            row[key] = row[m] / base[m] if ok else None
        row["memory_ratio"] = row[metrics[0].removesuffix("_gib") + "_ratio"]


def check_targets(rows: list[dict], conditions: dict, run: dict) -> bool:
    """Set `meets_target` on rows with a target; None unless the run meets `conditions`."""
    applies = (run["device_type"] == conditions.get("device")
               and run["shape"]["batch_size"] == conditions.get("batch_size")
               and run["shape"]["seq_len"] == conditions.get("seq_len")
               and run["attention"] in conditions.get("attention", [run["attention"]])
               and not run["shape_overrides"])
    for row in rows:
        target = row.get("target")
        if not target:
            continue
        if (applies and row["precision"] == conditions.get("precision", "fp32")
                and row["status"] == "ok" and row["time_ratio"] is not None):
            row["meets_target"] = all(row[k] <= v for k, v in target.items())
        else:
            row["meets_target"] = None
    return applies


def fmt(x: float | None, spec: str = ".4g", suffix: str = "") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:{spec}}{suffix}"


def markdown(result: dict) -> str:
    device_type = result["device_type"]
    s = result["shape"]
    shape = (f"batch {s['batch_size']} x length {s['seq_len']}, {s['num_hidden_layers']} layers, "
             f"hidden {s['hidden_size']}, {result['attention']} attention, {result['steps']} "
             f"timed steps after {result['warmup']} warm-up")
    if result.get("rounds", 1) > 1:
        shape += (f", {result['rounds']} rounds (every setting measured once a round, the order "
                  "reversed every other round; times pool the rounds)")
    lines = [f"## Step cost on {result['device']}", "",
             f"{shape}. Ratios are to {result['baseline']} of the same run "
             f"({result['date']}; torch {result['env']['torch']}, transformers "
             f"{result['env']['transformers']}, python {result['env']['python']}).", "",
             f"`{result['command']}`", ""]
    m1, m2 = MEMORY_METRICS[device_type]
    names = {"max_memory_allocated_gib": "max allocated GiB",
             "max_memory_reserved_gib": "max reserved GiB",
             "peak_rss_gib": "peak RSS GiB", "peak_rss_above_model_gib": "RSS above model GiB"}
    rounds = result.get("rounds", 1) > 1
    faults = device_type == "cpu"
    head = ["setting", "precision", "s/step mean", "s/step median", "time x AdamW",
            *(["x AdamW in each round"] if rounds else []), names[m1], "x AdamW", names[m2],
            "x AdamW", *(["minor faults / step"] if faults else []), "target", "met"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        target = ", ".join(f"{k.removesuffix('_ratio')} <= {v}x"
                           for k, v in (r.get("target") or {}).items()) or ""
        met = {True: "yes", False: "NO", None: "n/a"}[r.get("meets_target")] if target else ""
        if r["status"] != "ok":
            cells = [r["setting"], r["precision"], f"failed: {r['error']}",
                     *[""] * (len(head) - 5), target, ""]
        else:
            per_round = ", ".join(fmt(x, ".2f") for x in r.get("round_time_ratios") or [])
            cells = [r["setting"], r["precision"], fmt(r["step_time_mean_s"]),
                     fmt(r["step_time_median_s"]), fmt(r["time_ratio"], ".2f", "x"),
                     *([per_round or "n/a"] if rounds else []),
                     fmt(r[m1], ".3f"), fmt(r[m1.removesuffix("_gib") + "_ratio"], ".2f", "x"),
                     fmt(r[m2], ".3f"), fmt(r[m2.removesuffix("_gib") + "_ratio"], ".2f", "x"),
                     *([fmt(r.get("minor_faults_per_step"), ".0f")] if faults else []),
                     target, met]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for sk in result["skipped"]:
        lines.append(f"- skipped {sk['setting']}: {sk['reason']}")
    if not result["targets_apply"]:
        lines.append("- targets are for one H100 (CUDA, fp32, batch 16, length 384, math/eager "
                     "attention); this run's conditions differ, so they are not checked")
    lines.append(f"- memory: {MEMORY_NOTES[device_type]}")
    lines += [f"- {note}" for note in result["notes"]["run"]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="default: cuda if available, else cpu")
    p.add_argument("--batch-size", type=int, default=None,
                   help="default from the config: 16 on cuda, 4 on cpu")
    p.add_argument("--seq-len", type=int, default=None,
                   help="default from the config: 384 on cuda, 128 on cpu")
    p.add_argument("--steps", type=int, default=None, help="timed steps per setting (default 10)")
    p.add_argument("--rounds", type=int, default=None,
                   help="measure every setting this many times, interleaved (default 1)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3)")
    p.add_argument("--settings", default=None,
                   help="comma-separated names from the config (default: all)")
    p.add_argument("--bf16", action="store_true",
                   help="also run every setting under bf16 autocast (CUDA only)")
    p.add_argument("--attention", choices=["math", "eager", "sdpa"], default=None,
                   help="attention kernel (default from the config: math)")
    p.add_argument("--model", default=None,
                   help="configs/model/<model>.yaml built with random weights (default from the "
                        "config: albert_base_shape; albert_tiny: the demo's model)")
    p.add_argument("--layers", type=int, default=None, help="num_hidden_layers (tiny shapes)")
    p.add_argument("--hidden", type=int, default=None,
                   help="hidden size (tiny shapes): intermediate 4H, H/64 heads")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--isolate", action="store_true",
                   help="one process per setting on CUDA too (always so on CPU)")
    p.add_argument("--out", default=None, help="output directory (default results/bench)")
    p.add_argument("--config", type=Path, default=None,
                   help="settings and defaults (default configs/bench/step_cost.yaml)")
    p.add_argument("--single", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def resolve(opts: argparse.Namespace, bench: dict) -> list[str]:
    """Fill the defaults in `opts` from the config; return notes for the output."""
    notes = []
    if opts.device is None:
        opts.device = "cuda" if torch.cuda.is_available() else "cpu"
    if opts.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_step: --device cuda but torch.cuda.is_available() is False")
    if opts.bf16 and opts.device != "cuda":
        raise SystemExit("bench_step: --bf16 needs --device cuda")
    shape = bench["shape"][opts.device]
    defaulted = opts.batch_size is None or opts.seq_len is None
    opts.batch_size = opts.batch_size or int(shape["batch_size"])
    opts.seq_len = opts.seq_len or int(shape["seq_len"])
    if opts.device == "cpu" and defaulted:
        gpu = bench["shape"]["cuda"]
        notes.append(f"CPU run: batch {opts.batch_size} x length {opts.seq_len}, smaller than the "
                     f"GPU default {gpu['batch_size']} x {gpu['seq_len']}")
    opts.steps = int(bench["steps"]) if opts.steps is None else opts.steps
    opts.warmup = int(bench["warmup"]) if opts.warmup is None else opts.warmup
    opts.rounds = int(bench.get("rounds", 1)) if opts.rounds is None else opts.rounds
    opts.attention = opts.attention or bench.get("attention", "math")
    opts.seed = int(bench.get("seed", 0)) if opts.seed is None else opts.seed
    opts.out = Path(opts.out or bench.get("out", "results/bench"))
    if min(opts.steps, opts.warmup, opts.batch_size, opts.seq_len, opts.rounds) < 1:
        raise SystemExit("bench_step: --steps, --warmup, --batch-size, --seq-len and --rounds "
                         "must be >= 1")
    return notes


def run_single(opts: argparse.Namespace, bench: dict) -> dict[str, Any]:
    name = opts.single
    base = name.removesuffix("+bf16")
    rows, _ = plan(bench, [base], bf16=name.endswith("+bf16"), add_baseline=False)
    row = next(r for r in rows if r["setting"] == name)
    out = measure(row, model_config(bench, opts), opts)
    print(json.dumps({SINGLE_KEY: out}), flush=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; write the JSON and Markdown files; return the JSON's content."""
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(raw_argv)
    if opts.config is None:
        opts.config = bench_config()
    bench = load_yaml(opts.config)
    notes = resolve(opts, bench)
    if opts.single is not None:
        return run_single(opts, bench)

    selected = [s.strip() for s in opts.settings.split(",") if s.strip()] if opts.settings else None
    rows, skipped = plan(bench, selected, opts.bf16)
    steps = whole_periods(rows, opts.steps)
    if steps != opts.steps:
        notes.append(f"timed steps rounded up from {opts.steps} to {steps}, a multiple of the "
                     "longest refresh period")
        opts.steps = steps
    for note in notes:
        print(f"bench_step: {note}", file=sys.stderr)
    model_spec = model_config(bench, opts)
    isolate = opts.isolate or opts.device == "cpu"
    device_type = opts.device

    measured: list[list[dict]] = [[] for _ in rows]  # each row's measurement in each round
    for rnd in range(opts.rounds):
        order = range(len(rows)) if rnd % 2 == 0 else reversed(range(len(rows)))
        tag = f"round {rnd + 1}/{opts.rounds}, " if opts.rounds > 1 else ""
        for n, i in enumerate(order, 1):
            row = rows[i]
            if row.get("status") == "failed":
                continue  # it failed in an earlier round (e.g. out of memory): not again
            where = f"[{tag}{n}/{len(rows)}] {row['setting']}"
            print(f"{where} ({row['label']}, {row['precision']}) ...", file=sys.stderr, flush=True)
            try:
                one = measure_in_child(row, opts) if isolate else measure(row, model_spec, opts)
                measured[i].append(one)
            except Exception as err:  # one failed setting (e.g. out of memory) must not end a run
                row.update(status="failed", error=f"{type(err).__name__}: {err}".splitlines()[0])
            free_memory(device_type)
            if row.get("status") == "failed":
                print(f"{where}: FAILED {row['error']}", file=sys.stderr)
            else:
                mem = MEMORY_METRICS[device_type][0]
                print(f"{where}: {one['step_time_mean_s']:.4g} s/step, {mem} {one[mem]:.3f}",
                      file=sys.stderr, flush=True)
    for row, rounds in zip(rows, measured, strict=True):
        if row.get("status") != "failed":
            row.update(status="ok", **pool_rounds(rounds, device_type))

    add_ratios(rows, device_type)
    device = device_name(opts.device)
    cfg = model_spec["config"]
    result: dict[str, Any] = {
        "device": device,
        "device_type": device_type,
        "env": environment(opts),
        "command": shlex.join(["python", SCRIPT, *raw_argv]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model": model_spec["source"],
        "shape": {"batch_size": opts.batch_size, "seq_len": opts.seq_len,
                  **{k: cfg[k] for k in ("num_hidden_layers", "hidden_size", "embedding_size",
                                         "num_attention_heads", "intermediate_size",
                                         "vocab_size")}},
        "shape_overrides": {k: v for k, v in (("layers", opts.layers), ("hidden", opts.hidden))
                            if v is not None},
        "steps": opts.steps, "warmup": opts.warmup, "rounds": opts.rounds, "seed": opts.seed,
        "attention": opts.attention, "baseline": bench["baseline"],
        "isolated_processes": isolate,
        "memory_metric": MEMORY_METRICS[device_type][0],
        "notes": {"memory": MEMORY_NOTES[device_type],
                  "time": "wall-clock seconds per step (forward, backward, optimizer.step, "
                          "zero_grad), CUDA synchronized before each clock read; time_ratio = "
                          "mean / baseline mean, median_time_ratio likewise with medians",
                  "public_reference": bench.get("public_reference"),
                  "run": notes},
        "rows": rows,
        "skipped": skipped,
    }
    result["targets_apply"] = check_targets(rows, bench.get("target_conditions") or {}, result)

    opts.out.mkdir(parents=True, exist_ok=True)
    suffix = f"_{opts.model}" if opts.model and opts.model != bench["model"] else ""
    json_path = opts.out / f"step_cost_{slug(device)}{suffix}.json"
    md_path = json_path.with_name(json_path.stem + ".md")
    table = markdown(result)
    result["files"] = {"json": str(json_path), "markdown": str(md_path)}
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(table)
    print(table)
    print(f"wrote {json_path} and {md_path}")
    return result


if __name__ == "__main__":
    main()
