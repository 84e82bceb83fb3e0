"""Data parallel over 2 processes (gloo, CPU) equals 1 process on the same global batch.

Runs go through `scripts/train.py` as a user starts them: `torchrun --nproc_per_node 2` against
plain `python`. The model is float64 with dropout off, so the only difference between the two
is the order of floating-point sums (each rank sums its shard, then the shards are summed).

Comparison: every parameter tensor within 1e-10 of the 1-process run, relative to the tensor's
largest entry. Tensors whose exact gradient is zero (the attention key bias, and the biases just
before the QA head's softmax, which a softmax cannot see) start at zero and hold only amplified
rounding noise (below NOISE = 1e-9 in both runs: AdamW's m / (sqrt(v) + eps) turns gradients of
1e-17 into steps of 1e-12); for them the bound is 1e-10 relative to the whole parameter vector's
largest entry (the normwise relative error), since a relative test would compare noise with
noise.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from secondorder.optim import CurvatureOptimizer
from secondorder.optim.protocol import backward_for_step, shard_ranges, split_range
from secondorder.runs import load_checkpoint, read_jsonl
from tiny import TINY

pytestmark = pytest.mark.slow  # two-process torchrun runs

ROOT = Path(__file__).resolve().parents[2]
TIMES = ("train_time_s", "eval_time_s", "step_time_s", "examples_per_s", "time_s", "rss_gib",
         "peak_memory_gib", "reserved_memory_gib")
EXACT = ["trainer.param_dtype=float64", "trainer.cpu=true", "data.num_train=48", "trainer.epochs=2"]
RUN = "adhoc"
NOISE = 1e-9


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def train(tmp: Path, name: str, nproc: int, *overrides: str, check: bool = True,
          popen: bool = False):
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={nproc}"] if nproc > 1 else [sys.executable])
    cmd = [*launcher, str(ROOT / "scripts" / "train.py"), *TINY, *EXACT,
           f"results_root={tmp / name}", f"cache_dir={tmp / 'cache'}", *overrides]
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=_env())
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def run_dir(tmp: Path, name: str, optimizer: str) -> Path:
    return tmp / name / RUN / f"{optimizer}-seed42"


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path / "checkpoints" / "last.pt")["model"]


def assert_close_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    scale = max(t.abs().max().item() for t in a.values() if t.is_floating_point())
    for k in a:
        if not a[k].is_floating_point():
            assert torch.equal(a[k], b[k]), k
            continue
        assert a[k].dtype == torch.float64
        diff = (a[k] - b[k]).abs().max().item()
        largest = a[k].abs().max().item()
        # the whole parameter vector, normwise; and each tensor that is more than noise
        bound = 1e-10 * (largest if largest > NOISE else scale)
        assert diff <= bound, f"{k}: max |1 process - 2 processes| = {diff:.3e} > {bound:.3e}"


def logs(path: Path) -> dict:
    strip = lambda rs: [{k: v for k, v in r.items() if k not in TIMES} for r in rs]  # noqa: E731
    return {s: strip(read_jsonl(path / f"{s}.jsonl")) for s in ("metrics", "evals", "epochs")}


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("dp")


# --------------------------------------------------------------------- sharding, in one process
def test_split_range_hand_cases():
    assert [split_range(5, r, 2) for r in range(2)] == [(0, 3), (3, 5)]
    assert [split_range(7, r, 3) for r in range(3)] == [(0, 3), (3, 5), (5, 7)]
    assert [split_range(1, r, 2) for r in range(2)] == [(0, 1), (1, 1)]  # rank 1: nothing
    with pytest.raises(ValueError, match="rank"):
        split_range(4, 2, 2)


def test_shard_ranges_split_head_and_tail():
    # global batch 12, Hessian slice 6 (hessian_batch_fraction 0.5), 2 ranks
    assert shard_ranges(12, 6, 0, 2) == ((0, 3), (6, 9))
    assert shard_ranges(12, 6, 1, 2) == ((3, 6), (9, 12))
    # every example exactly once, head examples only in heads
    for size, n_slice, world in ((12, 6, 2), (7, 2, 3), (5, 5, 4), (3, 1, 2)):
        seen = []
        for r in range(world):
            (h0, h1), (t0, t1) = shard_ranges(size, n_slice, r, world)
            assert h1 <= n_slice <= t0 or t0 == t1
            seen += [*range(h0, h1), *range(t0, t1)]
        assert sorted(seen) == list(range(size))


class _Curvature(CurvatureOptimizer):
    """A stand-in optimizer that asks for curvature on a slice of the batch."""

    def __init__(self, params, fraction):
        super().__init__(params, {})
        self._init_curvature(None, fraction)

    def needs_curvature(self):
        return True


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_rank_parts_sum_to_the_global_gradient_and_product(fraction):
    """backward_for_step on each rank's shard: the sums over ranks of the losses, gradients and
    Hessian-vector products (of p.grad's graph, the product the optimizers take) equal the
    single-process ones, in float64 against an explicit float64 computation."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    model = model.double()
    params = list(model.parameters())
    batch = {"input_ids": torch.randn(10, 3, dtype=torch.float64),
             "y": torch.randn(10, 1, dtype=torch.float64)}

    def loss_fn(b):
        return ((model(b["input_ids"]) - b["y"]) ** 2).mean()

    z = [torch.randn_like(p) for p in params]

    def grads_and_product(rank, world):
        for p in params:
            p.grad = None
        loss, kwargs = backward_for_step(loss_fn, batch, _Curvature(params, fraction), rank=rank,
                                         world_size=world)
        grads = [p.grad.detach().clone() for p in params]
        hz = torch.autograd.grad([p.grad for p in params], params, grad_outputs=z)
        return float(loss), grads, [h.detach() for h in hz], kwargs

    loss1, g1, hz1, kw1 = grads_and_product(0, 1)
    parts = [grads_and_product(r, 3) for r in range(3)]
    assert sum(p[0] for p in parts) == pytest.approx(loss1, rel=1e-14)
    assert all(p[3] == kw1 for p in parts)  # the same hessian_scale on every rank
    for i in range(len(params)):
        torch.testing.assert_close(sum(p[1][i] for p in parts), g1[i], rtol=1e-13, atol=1e-15)
        torch.testing.assert_close(sum(p[2][i] for p in parts), hz1[i], rtol=1e-13, atol=1e-15)
    # and the single-process product is the Hessian of the slice's loss times z (by hand):
    # the full loss's gradient with the slice part carrying the graph, scaled as the trainer does
    n = len(batch["input_ids"]) if fraction == 1.0 else 5
    head = {k: v[:n] for k, v in batch.items()}
    flat = torch.cat([p.detach().reshape(-1) for p in params])

    def head_loss(theta):
        offset, rebuilt = 0, []
        for p in params:
            rebuilt.append(theta[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        h = torch.tanh(head["input_ids"] @ rebuilt[0].T + rebuilt[1])
        return (((h @ rebuilt[2].T + rebuilt[3]) - head["y"]) ** 2).mean()

    hessian = torch.autograd.functional.hessian(head_loss, flat)
    zflat = torch.cat([v.reshape(-1) for v in z])
    scale = kw1.get("hessian_scale", 1.0)
    torch.testing.assert_close(torch.cat([h.reshape(-1) for h in hz1]) * scale, hessian @ zflat,
                               rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------- 2 processes = 1 process
CASES = {
    "adamw": ["optimizer=adamw"],
    "adahessian": ["optimizer=adahessian"],
    # steps without a curvature product, and products on half of each rank's shard
    "adahessian_interval2_fraction05": ["optimizer=adahessian", "optimizer.hessian_interval=2",
                                        "optimizer.hessian_batch_fraction=0.5"],
    "soaa": ["optimizer=soaa"],
    "adasub": ["optimizer=adasub", "optimizer.mode=model", "optimizer.reuse_products=true"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_equal_one(tmp, case):
    overrides = [*CASES[case], f"run_name={case}-seed42"]
    train(tmp, f"{case}-1", 1, *overrides)
    train(tmp, f"{case}-2", 2, *overrides)
    one, two = run_dir(tmp, f"{case}-1", case), run_dir(tmp, f"{case}-2", case)
    assert_close_weights(weights(one), weights(two))
    state1 = load_checkpoint(one / "checkpoints" / "last.pt")
    state2 = load_checkpoint(two / "checkpoints" / "last.pt")
    assert state1["progress"]["step"] == state2["progress"]["step"] >= 8  # 2 epochs, ≥ 4 steps each
    assert len(state2["rng_ranks"]) == 2 and "rng_ranks" not in state1
    # the logged losses (sums over ranks) agree; the last batch of an epoch is short, so some
    # steps give the ranks unequal shards
    l1 = [r["loss"] for r in read_jsonl(one / "metrics.jsonl")]
    l2 = [r["loss"] for r in read_jsonl(two / "metrics.jsonl")]
    assert len(l1) == len(l2) and l1 == pytest.approx(l2, rel=1e-10)
    # evaluation sharded by batches and gathered: the same predictions and scores
    assert (one / "predictions.json").read_text() == (two / "predictions.json").read_text()
    e1, e2 = (json.loads((d / "eval.json").read_text()) for d in (one, two))
    assert {k: v for k, v in e1.items() if k not in TIMES} == \
        {k: v for k, v in e2.items() if k not in TIMES}
    # rank 0 alone writes the run's files: one record per step, no duplicates
    assert [r["step"] for r in read_jsonl(two / "metrics.jsonl")] == \
        [r["step"] for r in read_jsonl(one / "metrics.jsonl")]


RESUME = ["optimizer=adahessian", "optimizer.hessian_interval=2",
          "optimizer.hessian_batch_fraction=0.5", "run_name=resume-seed42"]


@pytest.fixture(scope="module")
def straight_two(tmp):
    train(tmp, "straight-2", 2, *RESUME)
    return run_dir(tmp, "straight-2", "resume")


def test_killed_and_resumed_two_process_run_is_exact(tmp, straight_two):
    # stop_after_steps stops as if killed: it resumes from the checkpoint at step 3
    train(tmp, "stopped-2", 2, *RESUME, "trainer.checkpoint_every_steps=3",
          "trainer.stop_after_steps=5")
    stopped = run_dir(tmp, "stopped-2", "resume")
    assert load_checkpoint(stopped / "checkpoints" / "last.pt")["progress"]["step"] == 3
    assert read_jsonl(stopped / "metrics.jsonl")[-1]["step"] == 5
    train(tmp, "stopped-2", 2, *RESUME, "trainer.checkpoint_every_steps=3", "resume=true")
    for a, b in zip(weights(straight_two).values(), weights(stopped).values(), strict=True):
        assert torch.equal(a, b)
    assert logs(stopped) == logs(straight_two)
    assert (stopped / "predictions.json").read_text() == \
        (straight_two / "predictions.json").read_text()


def test_a_two_process_checkpoint_resumes_on_one_process(tmp, straight_two):
    """Any number of processes that divides the batch can continue a run."""
    train(tmp, "straight-1", 1, *RESUME)
    train(tmp, "switch", 2, *RESUME, "trainer.checkpoint_every_steps=3",
          "trainer.stop_after_steps=4")
    switched = run_dir(tmp, "switch", "resume")
    done = train(tmp, "switch", 1, *RESUME, "trainer.checkpoint_every_steps=3", "resume=true")
    assert "written by 2 process(es), this run has 1" in done.stderr + done.stdout
    assert_close_weights(weights(run_dir(tmp, "straight-1", "resume")), weights(switched))


def test_batch_not_divisible_by_processes_is_one_line(tmp):
    done = train(tmp, "odd", 2, "optimizer=adamw", "trainer.batch_size=7", check=False)
    assert done.returncode != 0
    assert "trainer.batch_size=7 is the global batch and must be divisible by the number of " \
        "processes (2)" in done.stdout + done.stderr


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_a_signal_to_one_rank_checkpoints_every_rank_at_one_step(tmp, straight_two):
    """Preemption under data parallelism: SIGUSR1 reaches one rank only; both ranks agree on the
    step, rank 0 writes it, both exit with 75; resuming gives the uninterrupted run's files."""
    name = "signalled-2"
    target = run_dir(tmp, name, "resume")
    proc = train(tmp, name, 2, *RESUME, "data.num_train=240", "trainer.epochs=1", popen=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if len(read_jsonl(target / "metrics.jsonl")) >= 3 if (target / "metrics.jsonl").exists() \
                else False:
            break
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) == 2
    os.kill(max(workers), signal.SIGUSR1)  # the later-started worker: rank 1
    out, _ = proc.communicate(timeout=180)
    # torchrun reports the workers' code 75 as a failure of its own (exit code 1). Once the first
    # rank has exited it may tear the other down before that one's own exit is recorded, so
    # one or two "75"s are printed; that every rank checkpointed the same step (behind a
    # barrier) is what the checkpoint and the exact resume below show.
    assert proc.returncode == 1 and 1 <= out.count("exitcode  : 75") <= 2, out[-3000:]
    state = load_checkpoint(target / "checkpoints" / "last.pt")
    step = state["progress"]["step"]
    assert 0 < state["progress"]["batch"]
    assert f"SIGUSR1 received: checkpoint {target / 'checkpoints' / 'last.pt'} at step {step};" \
        in out
    assert read_jsonl(target / "metrics.jsonl")[-1]["step"] == step
    train(tmp, name, 2, *RESUME, "data.num_train=240", "trainer.epochs=1", "resume=true")
    train(tmp, "straight-240", 2, *RESUME, "data.num_train=240", "trainer.epochs=1")
    expected = run_dir(tmp, "straight-240", "resume")
    assert logs(target) == logs(expected)
    for a, b in zip(weights(expected).values(), weights(target).values(), strict=True):
        assert torch.equal(a, b)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STUB_SRUN = """#!/bin/bash
while [[ "$1" == --* ]]; do shift; done
pids=()
for ((i = 0; i < SLURM_NTASKS; i++)); do SLURM_PROCID=$i SLURM_LOCALID=$i "$@" & pids+=($!); done
trap 'kill -USR1 "${pids[@]}"' USR1
trap 'kill -TERM "${pids[@]}"' TERM
worst=0
for p in "${pids[@]}"; do
  while true; do wait "$p"; c=$?; kill -0 "$p" 2>/dev/null || break; done
  (( c > worst )) && worst=$c
done
exit $worst
"""


def stub_cluster(tmp_path: Path, last: Path) -> tuple[dict, Path]:
    """A stub `srun` (SLURM_NTASKS tasks with SLURM's task variables, signals forwarded, the
    highest exit code; unlike torchrun it never kills the other tasks) and `scontrol`."""
    stub = tmp_path / "bin"
    stub.mkdir()
    calls = tmp_path / "scontrol.log"
    (stub / "scontrol").write_text(
        f"#!/bin/bash\necho \"$@ checkpoint=$(test -f {last} && echo yes || echo no)\" >> {calls}\n")
    (stub / "srun").write_text(STUB_SRUN)
    for f in stub.iterdir():
        f.chmod(0o755)
    env = {"PATH": f"{stub}:/usr/bin:/bin", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "2",
           "SLURM_SUBMIT_DIR": str(ROOT), "PY": sys.executable, "HOME": str(tmp_path),
           "MASTER_PORT": str(_free_port()), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    return env, calls


def test_multi_gpu_sbatch_under_stub_srun(tmp_path):
    """slurm/train_multi_gpu.sbatch: USR1 to the batch shell reaches both ranks, the job is
    requeued only once the checkpoint is on disk, and the requeued job finishes."""
    target = tmp_path / "r" / RUN / "resume-seed42"
    last = target / "checkpoints" / "last.pt"
    env, calls = stub_cluster(tmp_path, last)
    args = [*TINY, *EXACT, *RESUME, "data.num_train=240", "trainer.epochs=1",
            f"results_root={tmp_path / 'r'}", f"cache_dir={tmp_path / 'cache'}"]
    script = ["bash", str(ROOT / "slurm" / "train_multi_gpu.sbatch"), *args]
    proc = subprocess.Popen(script, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.time() + 180
    while time.time() < deadline and len(read_jsonl(target / "metrics.jsonl")) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 75, out[-3000:]
    assert calls.read_text() == "requeue 4242 checkpoint=yes\n"
    assert load_checkpoint(last)["progress"]["batch"] > 0
    again = subprocess.run(script, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert (target / "complete.json").exists()


def test_a_failure_on_rank_0_before_training_stops_every_rank(tmp_path):
    """Rank 0 alone builds the tokenizer; if that fails (here: an unwritable cache directory),
    the other ranks stop with a line saying so instead of waiting for rank 0 forever (srun,
    unlike torchrun, does not kill them)."""
    env, calls = stub_cluster(tmp_path, tmp_path / "none.pt")
    args = [*TINY, *EXACT, "optimizer=adamw", f"results_root={tmp_path / 'r'}",
            "cache_dir=/proc/no-such-dir/cache"]
    done = subprocess.run(["bash", str(ROOT / "slurm" / "train_multi_gpu.sbatch"), *args],
                          env=env, capture_output=True, text=True, timeout=240)
    out = done.stdout + done.stderr
    assert done.returncode not in (0, 75), out[-3000:]
    assert "rank 0 stopped before training (" in out, out[-3000:]
    assert not calls.exists()  # not requeued
