"""The report end to end: train each run its tables and figures need (skipping finished ones,
resuming killed ones), then write the tables and figures. Entry point: scripts/reproduce.py."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from secondorder.paths import configs_dir, project_root
from secondorder.report.paper import needed_experiments
from secondorder.runs import is_complete, read_json, write_json

# The published runs live in results/ of the checkout (train.py runs there); a user's own runs
# go to outputs/ (configs/train.yaml). SECONDORDER_RESULTS or a results_root= override wins.
PUBLISHED_RESULTS = "results"


def published_overrides(overrides: list[str]) -> list[str]:
    """`overrides` with results_root=results first, unless the caller chose a results root."""
    import os

    if os.environ.get("SECONDORDER_RESULTS") or any(
            o.lstrip("+~").startswith("results_root=") for o in overrides):
        return list(overrides)
    return [f"results_root={PUBLISHED_RESULTS}", *overrides]


def planned_runs(scale: str, parts: tuple[str, ...], seeds: list[int] | None,
                 overrides: list[str]) -> list[dict]:
    """One entry per run: experiment, seed, run_dir (composed exactly as training composes it)."""
    seeds = seeds or list(OmegaConf.load(configs_dir() / "reproduce.yaml")[scale]["seeds"])
    return compose_plan(scale, {experiment: seeds if which == "all" else seeds[:1]
                                for experiment, which in needed_experiments(parts, scale=scale).items()},
                        overrides)


def compose_plan(scale: str, experiments: dict[str, list[int]], overrides: list[str]) -> list[dict]:
    """One entry per (experiment, seed) of `experiments` (names relative to `scale`), in order."""
    from hydra import compose, initialize_config_dir

    plan = []
    with initialize_config_dir(config_dir=str(configs_dir()), version_base="1.3"):
        for experiment, seeds in experiments.items():
            for seed in seeds:
                args = [f"experiment={scale}/{experiment}", f"seed={seed}", *overrides]
                cfg = compose("train", overrides=args)
                plan.append({"experiment": f"{scale}/{experiment}", "seed": seed,
                             "run_dir": str(cfg.run_dir), "overrides": args,
                             # a hand-off starts from another run's checkpoint: a later wave
                             "starts_from_run": bool(cfg.strategy.get("init_from"))})
    return plan


def launch_waves(todo: list[dict], launcher: str, overrides: list[str]) -> int:
    """Train `todo` through Hydra's submitit launcher (configs/hydra/launcher/<launcher>.yaml):
    one multirun per experiment over its seeds, all experiments of a wave at once (each
    multirun waits for its jobs); the hand-offs form a second wave, after the runs they start
    from. Returns the first non-zero exit code, or 0."""
    waves = [[r for r in todo if not r["starts_from_run"]], [r for r in todo if r["starts_from_run"]]]
    for wave in waves:
        by_experiment: dict[str, list[int]] = {}
        for r in wave:
            by_experiment.setdefault(r["experiment"], []).append(r["seed"])
        procs = []
        for experiment, seeds in by_experiment.items():
            cmd = [sys.executable, str(project_root() / "scripts" / "train.py"), "-m",
                   f"hydra/launcher={launcher}", f"experiment={experiment}",
                   f"seed={','.join(str(s) for s in seeds)}", *overrides, "resume=true"]
            print(f"reproduce: submitting {experiment} seeds {seeds} ({launcher})", flush=True)
            procs.append((experiment, subprocess.Popen(cmd, cwd=project_root())))
        codes = [(e, p.wait()) for e, p in procs]
        failed = [(e, c) for e, c in codes if c != 0]
        if failed:
            for e, c in failed:
                print(f"reproduce: {e} failed (exit {c}); fix it and run again: finished runs "
                      "are kept", file=sys.stderr)
            return failed[0][1]
    return 0


def train_plan(plan: list[dict], overrides: list[str], *, dry_run: bool = False,
               launcher: str | None = None, what: str = "reproduce") -> int:
    """Train the runs of `plan` (from :func:`planned_runs`) that are not complete, one after
    another here, or through Hydra's submitit `launcher`; print each run's state. Returns the
    first non-zero exit code, or 0."""
    if launcher and not (configs_dir() / "hydra" / "launcher" / f"{launcher}.yaml").exists():
        known = sorted(p.stem for p in (configs_dir() / "hydra" / "launcher").glob("*.yaml"))
        raise SystemExit(f"{what}: --launcher {launcher}: no configs/hydra/launcher/"
                         f"{launcher}.yaml; known: {known}")
    for i, run in enumerate(plan, 1):
        state = "done" if is_complete(run["run_dir"]) else "to train"
        print(f"[{i}/{len(plan)}] {run['experiment']} seed {run['seed']}: {state}  "
              f"({run['run_dir']})", flush=True)
        if dry_run or state == "done" or launcher:
            run["seconds"] = 0.0
            continue
        start = time.time()
        cmd = [sys.executable, str(project_root() / "scripts" / "train.py"), *run["overrides"],
               "resume=true"]
        code = subprocess.run(cmd, cwd=project_root(), check=False).returncode
        run["seconds"] = time.time() - start
        if code != 0:
            print(f"{what}: {run['experiment']} seed {run['seed']} failed (exit {code}); "
                  "fix it and run again: finished runs are kept", file=sys.stderr)
            return code
    if launcher and not dry_run:
        return launch_waves([r for r in plan if not is_complete(r["run_dir"])], launcher,
                            overrides)
    return 0


def reproduce(scale: str, parts: tuple[str, ...], seeds: list[int] | None,
              overrides: list[str], *, dry_run: bool = False, launcher: str | None = None) -> int:
    """`launcher`: a configs/hydra/launcher/ name (slurm_a100, slurm_v100, local): the runs go
    to it as Hydra multiruns (`launch_waves`) instead of training here one after another."""
    from secondorder.report.figures import write_figures
    from secondorder.report.tables import write_table

    overrides = published_overrides(overrides)
    plan = planned_runs(scale, parts, seeds, overrides)
    t0 = time.time()
    code = train_plan(plan, overrides, dry_run=dry_run, launcher=launcher)
    if code != 0 or dry_run:
        return code
    results = Path(plan[0]["run_dir"]).parents[2] if plan else project_root() / "results"
    made = [write_table(t, results, scale) for t in ("table1", "table3") if t in parts]
    if "figures" in parts:
        made += write_figures(results, scale)
    trained = [r for r in plan if r.get("seconds")]
    summary = {"scale": scale, "parts": list(parts), "wall_time_s": time.time() - t0,
               "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv[1:],
               "launcher": launcher, "runs": plan, "files": [str(p) for p in made]}
    # one entry per call that trained something, oldest first: a call for one part does not hide
    # the earlier ones, and a call that only rebuilt the tables changes nothing
    path = results / scale / "reproduce.json"
    if trained or launcher:
        previous = read_json(path) if path.exists() else {}
        calls = previous.get("calls", [previous] if "runs" in previous else [])
        write_json(path, {"calls": [*calls, summary]})
    for path in made:
        if path.suffix == ".md":
            print(path.read_text())
    print(f"written: {', '.join(str(p) for p in made)}")
    print(f"reproduce ({scale}): {summary['wall_time_s'] / 60:.1f} min")
    return 0
