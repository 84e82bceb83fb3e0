"""`make ablate`: train the runs `configs/ablation.yaml` names (skipping finished ones, resuming
killed ones), then write the ablation table and figure (`secondorder.report.ablation`)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from secondorder.experiments.reproduce import compose_plan, published_overrides, train_plan
from secondorder.paths import configs_dir, project_root


def load_spec(path: str | Path | None = None) -> dict:
    spec = OmegaConf.to_container(OmegaConf.load(path or configs_dir() / "ablation.yaml"),
                                  resolve=True)
    assert isinstance(spec, dict)
    return spec


def ablation_plan(spec: dict, overrides: list[str], parts: tuple[str, ...]) -> list[dict]:
    """The baseline, the reference (AdamW) and the screen with `screen_seeds`; the confirmation
    with `confirm_seeds` (parts: "screen", "confirm")."""
    runs: dict[str, list[int]] = {}
    if "screen" in parts:
        for name in (spec["reference"], spec["baseline"], *(e["experiment"] for e in spec["screen"])):
            runs.setdefault(name, list(spec["screen_seeds"]))
    if "confirm" in parts:
        for e in spec.get("confirm") or []:
            runs[e["experiment"]] = sorted({*runs.get(e["experiment"], []), *spec["confirm_seeds"]})
    return compose_plan(spec["scale"], runs, overrides)


def ablate(overrides: list[str], *, parts: tuple[str, ...] = ("screen", "confirm"),
           dry_run: bool = False, launcher: str | None = None, spec_path: str | Path | None = None,
           report_only: bool = False) -> int:
    from secondorder.report.ablation import write_ablation

    spec = load_spec(spec_path or configs_dir() / "ablation.yaml")
    overrides = published_overrides(overrides)
    plan = ablation_plan(spec, overrides, parts)
    if not report_only:
        code = train_plan(plan, overrides, dry_run=dry_run, launcher=launcher, what="ablate")
        if code != 0 or dry_run:
            return code
    results = Path(plan[0]["run_dir"]).parents[2 + spec["scale"].count("/")] if plan \
        else project_root() / "results"
    made = write_ablation(results, spec)
    print(made[0].read_text())
    print(f"written: {', '.join(str(p) for p in made)}")
    return 0
