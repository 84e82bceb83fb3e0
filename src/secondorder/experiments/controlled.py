"""Block-heterogeneity experiments of "Why Transformers Need Adam: A Hessian Perspective"
(`002_*`): the quadratic cases and the scaled MLP, with their figures and a summary.

    python scripts/heterogeneity.py                      # default run (a few minutes on 2 CPUs)
    python scripts/heterogeneity.py --quick              # smoke test (seconds)
    python scripts/heterogeneity.py --skip-mlp --quad-iters 2000
    python scripts/heterogeneity.py --lanczos-steps 100 --lanczos-runs 10 \\
        --epochs 40                                     # closer to the paper, much slower

Writes to ``--out`` (default ``results/heterogeneity/``):

* ``quadratic.json`` / ``figure8.png``: GD vs Adam (beta1 = 0) on the block-diagonal quadratics
  (Section 3, Figure 8); Cases 1-2 use parametrised block spectra (see
  ``secondorder.experiments.quadratic``).
* ``mlp.json`` / ``figure5.png``: JS0 of the layer-wise Hessian spectra at initialisation and
  the best SGD / Adam test accuracy of the c-scaled MLP (Figure 5, Table 3), on scikit-learn's
  digits data (MNIST is not available offline); ``mlp_js_heatmap_c*.png`` and
  ``mlp_spectra_c*.png`` for the ``--heatmap-c`` values.
* ``summary.json``: the settings and headline numbers (also printed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np


def _finite(obj):
    """JSON-safe copy: non-finite floats become None (strict JSON has no inf / nan)."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    if isinstance(obj, float | np.floating):
        x = float(obj)
        return x if math.isfinite(x) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _dump(obj, path: Path) -> None:
    path.write_text(json.dumps(_finite(obj), indent=1))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="results/heterogeneity", help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quick", action="store_true", help="tiny settings for a smoke test")
    p.add_argument("--no-progress", action="store_true", help="disable tqdm bars")
    q = p.add_argument_group("quadratic (Section 3, Figure 8)")
    q.add_argument("--skip-quadratic", action="store_true")
    q.add_argument("--quad-cases", type=int, nargs="+", default=[1, 2, 3, 4])
    q.add_argument("--quad-iters", type=int, default=5000)
    m = p.add_argument_group("MLP (Figure 5, Table 3)")
    m.add_argument("--skip-mlp", action="store_true")
    m.add_argument("--mlp-c", type=float, nargs="+", default=[float(c) for c in range(1, 16)])
    m.add_argument("--epochs", type=int, default=10)
    m.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2, 1e-1])
    m.add_argument("--sgd-momentum", type=float, default=0.9)
    m.add_argument("--hessian-batches", type=int, default=4, help="batches of 128 in the loss")
    m.add_argument("--lanczos-steps", type=int, default=60, help="paper: 100")
    m.add_argument("--lanczos-runs", type=int, default=4, help="paper: 10")
    m.add_argument("--grid-points", type=int, default=20_000)
    m.add_argument("--heatmap-c", type=float, nargs="*", default=[1, 3, 8, 15])
    args = p.parse_args(argv)
    if args.quick:
        args.quad_cases = [3, 4]
        args.quad_iters = 300
        args.mlp_c = [1.0, 8.0]
        args.epochs = 1
        args.lrs = [1e-3, 1e-2]
        args.hessian_batches = 1
        args.lanczos_steps = 10
        args.lanczos_runs = 1
        args.grid_points = 2000
        args.heatmap_c = [8.0]
    return args


def run_quadratic(args, out: Path, summary: dict) -> None:
    from secondorder.experiments.quadratic import run_all_cases
    from secondorder.report.controlled_figures import figure_8

    t0 = time.time()
    results = run_all_cases(
        args.quad_cases,
        num_iters=args.quad_iters,
        seed=args.seed,
        progress=not args.no_progress,
    )
    _dump({str(c): r.to_json() for c, r in results.items()}, out / "quadratic.json")
    figure_8(results, out / "figure8.png")
    finals = {}
    for c, r in results.items():
        finals[f"case{c}"] = {k: r.final(k) for k in r.curves} | {
            f"lr {k}": v for k, v in r.lrs.items()
        }
    summary["quadratic"] = {
        "num_iters": args.quad_iters,
        "final_grad_norm": finals,
        "wall_time_s": time.time() - t0,
    }
    print(f"\nQuadratic problems: final gradient norm after {args.quad_iters} iterations")
    for c, r in results.items():
        parts = ", ".join(f"{k} {r.final(k):.3g} (lr {r.lrs[k]:.3g})" for k in r.curves)
        print(f"  case {c}: {parts}")


def _acc(res, opt: str, i: int) -> str:
    acc, lr = res.best_acc[opt][i], res.best_lr[opt][i]
    return "all diverged" if lr is None else f"{acc:.3f} ({lr:.0e})"


def run_mlp(args, out: Path, summary: dict) -> None:
    from secondorder.experiments.mlp import DATASET_NOTE, run_mlp_experiment
    from secondorder.report.controlled_figures import figure_5

    res = run_mlp_experiment(
        args.mlp_c,
        seed=args.seed,
        lrs=args.lrs,
        epochs=args.epochs,
        sgd_momentum=args.sgd_momentum,
        num_batches=args.hessian_batches,
        num_steps=args.lanczos_steps,
        num_runs=args.lanczos_runs,
        grid_points=args.grid_points,
        out_dir=out,
        heatmap_cs=args.heatmap_c,
        progress=not args.no_progress,
    )
    _dump(res.to_json(), out / "mlp.json")
    figure_5(res, out / "figure5.png")
    summary["mlp"] = {
        "dataset": DATASET_NOTE,
        "c": res.cs,
        "js0": res.js0,
        "js0_uniform_grid": res.js0_uniform_grid,
        "js0_grid_sum": res.js0_grid_sum,
        "best_test_acc": res.best_acc,
        "best_lr": res.best_lr,
        "settings": res.settings,
    }
    print(f"\nMLP on digits ({DATASET_NOTE})")
    print(
        f"  {'c':>5} {'JS0':>8} {'JS0 unif.':>9} {'JS0 grid_sum':>13} "
        f"{'SGD acc (lr)':>15} {'Adam acc (lr)':>15}"
    )
    for i, c in enumerate(res.cs):
        print(
            f"  {c:5g} {res.js0[i]:8.4f} {res.js0_uniform_grid[i]:9.4f} "
            f"{res.js0_grid_sum[i]:13.4g} "
            f"{_acc(res, 'sgd', i):>15} {_acc(res, 'adam', i):>15}"
        )


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    try:  # numpy's BLAS pool too (threadpoolctl ships with scikit-learn)
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=max(1, args.threads))
    except ImportError:  # pragma: no cover
        limits = None
    try:
        return _run(args)
    finally:
        if limits is not None:
            limits.restore_original_limits()


def _run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    summary: dict = {"args": vars(args)}
    if not args.skip_quadratic:
        run_quadratic(args, out, summary)
    if not args.skip_mlp:
        run_mlp(args, out, summary)
    summary["wall_time_s"] = time.time() - t0
    _dump(summary, out / "summary.json")
    print(f"\nwrote {out}/ in {summary['wall_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
