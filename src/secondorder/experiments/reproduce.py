"""The report end to end: train each run its tables and figures need (skipping finished ones,
resuming killed ones), then write the tables and figures. Entry point: scripts/reproduce.py."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from secondorder.report.paper import needed_experiments
from secondorder.runs import is_complete, write_json

ROOT = Path(__file__).resolve().parents[3]  # the repository (src/secondorder/experiments/)
CONFIGS = ROOT / "configs"


def planned_runs(scale: str, parts: tuple[str, ...], seeds: list[int] | None,
                 overrides: list[str]) -> list[dict]:
    """One entry per run: experiment, seed, run_dir (composed exactly as training composes it)."""
    from hydra import compose, initialize_config_dir

    seeds = seeds or list(OmegaConf.load(CONFIGS / "reproduce.yaml")[scale]["seeds"])
    plan = []
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        for experiment, which in needed_experiments(parts).items():
            for seed in seeds if which == "all" else seeds[:1]:
                args = [f"experiment={scale}/{experiment}", f"seed={seed}", *overrides]
                cfg = compose("train", overrides=args)
                plan.append({"experiment": f"{scale}/{experiment}", "seed": seed,
                             "run_dir": str(cfg.run_dir), "overrides": args})
    return plan


def reproduce(scale: str, parts: tuple[str, ...], seeds: list[int] | None,
              overrides: list[str], *, dry_run: bool = False) -> int:
    from secondorder.report.figures import write_figures
    from secondorder.report.tables import write_table

    plan = planned_runs(scale, parts, seeds, overrides)
    t0 = time.time()
    for i, run in enumerate(plan, 1):
        state = "done" if is_complete(run["run_dir"]) else "to train"
        print(f"[{i}/{len(plan)}] {run['experiment']} seed {run['seed']}: {state}  "
              f"({run['run_dir']})", flush=True)
        if dry_run or state == "done":
            run["seconds"] = 0.0
            continue
        start = time.time()
        cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), *run["overrides"], "resume=true"]
        code = subprocess.run(cmd, cwd=ROOT, check=False).returncode
        run["seconds"] = time.time() - start
        if code != 0:
            print(f"reproduce: {run['experiment']} seed {run['seed']} failed (exit {code}); "
                  "fix it and run again: finished runs are kept", file=sys.stderr)
            return code
    if dry_run:
        return 0
    results = Path(plan[0]["run_dir"]).parents[2] if plan else ROOT / "results"
    made = [write_table(t, results, scale) for t in ("table1", "table3") if t in parts]
    if "figures" in parts:
        made += write_figures(results, scale)
    summary = {"scale": scale, "parts": list(parts), "wall_time_s": time.time() - t0,
               "runs": plan, "files": [str(p) for p in made]}
    write_json(results / scale / "reproduce.json", summary)
    for path in made:
        if path.suffix == ".md":
            print(path.read_text())
    print(f"written: {', '.join(str(p) for p in made)}")
    print(f"reproduce ({scale}): {summary['wall_time_s'] / 60:.1f} min")
    return 0
