"""make ablate's table and figure from hand-made run files, its plan, and its configs: each
factor's experiment differs from the baseline in training keys, and only in them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from secondorder.experiments.ablation import ablation_plan, load_spec
from secondorder.report.ablation import answers, write_ablation
from secondorder.report.paper import needed_experiments, published

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SPEC = {"scale": "demo", "baseline": "base", "reference": "adamw", "screen_seeds": [1],
        "confirm_seeds": [1, 2],
        "screen": [{"factor": "clipping", "setting": "off", "experiment": "ablation/no_clip"},
                   {"factor": "eps", "setting": "1e-2", "experiment": "ablation/eps"}],
        "confirm": [{"factor": "clipping", "setting": "off", "experiment": "no_clip_10ep"}]}


def fake_run(root: Path, experiment: str, seed: int, f1: float, losses: list[float],
             telemetry: dict | None = None) -> None:
    d = root / "demo" / experiment / f"run-seed{seed}"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(OmegaConf.to_yaml({"seed": seed, "strategy": {}}))
    final = {"f1": f1, "exact": f1 - 1, "epoch": 10 if "10ep" in experiment else 3, "HasAns_f1": 2 * (f1 - 33.3), "NoAns_f1": 100.0,
             "total": 1000, "NoAns_total": 333}
    (d / "eval.json").write_text(json.dumps(final))
    (d / "metrics.jsonl").write_text("".join(
        json.dumps({"step": 10 * i, "epoch": i / 10, "loss": v, "train_time_s": 5.0 * i}) + "\n"
        for i, v in enumerate(losses, 1)))
    (d / "evals.jsonl").write_text(json.dumps({**final, "train_time_s": 50.0}) + "\n")
    (d / "epochs.jsonl").write_text(json.dumps({"epoch": 1, "steps": 100, "time_s": 20.0}) + "\n")
    if telemetry:
        (d / "curvature.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
            {"step": 10, "qa_outputs/denom_median": 9.0}, {"step": 50, **telemetry},
            {"step": 100, "qa_outputs/denom_median": 7.0}]))  # the one halfway is summarised
    (d / "complete.json").write_text("{}")


@pytest.fixture
def results(tmp_path):
    flat = [2.0] * 10
    fake_run(tmp_path, "adamw", 1, 45.0, [2.0, 1.5, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2])
    fake_run(tmp_path, "base", 1, 33.3, flat, {"qa_outputs/denom_median": 1.0,
                                              "key/denom_median": 0.01,
                                              "qa_outputs/update_ratio": 1e-4})
    fake_run(tmp_path, "ablation/no_clip", 1, 37.0, [2.0, 1.6, 1.3, 1.2, 1.1, 1.1, 1.1, 1.1,
                                                      1.1, 1.1])
    fake_run(tmp_path, "ablation/eps", 1, 33.8, flat)  # within the margin: does not answer
    fake_run(tmp_path, "no_clip_10ep", 1, 40.0, [1.0] * 10)
    fake_run(tmp_path, "no_clip_10ep", 2, 33.3, [3.0] * 10)  # one seed stays at the null answer
    return tmp_path


def test_rows_answers_targets_and_telemetry(results):
    paths = write_ablation(results, SPEC)
    rows = list(csv.DictReader((results / "demo" / "ablation" / "ablation.csv").open()))
    assert [(r["factor"], r["budget"], r["runs"]) for r in rows] == [
        ("baseline", "3 epochs", "1"), ("clipping", "3 epochs", "1"), ("eps", "3 epochs", "1"),
        ("clipping", "10 epochs", "2")]
    assert [r["answers"] for r in rows] == ["False", "True", "False", "False"]
    # each run's first evaluation more than 1 point above 33.3 (one per run here, at its end)
    assert [r["answers_from_epoch_runs"] for r in rows] == ["never", "3", "never", "10, never"]
    assert float(rows[0]["null_f1"]) == pytest.approx(33.3)
    assert float(rows[1]["final_loss_mean"]) == pytest.approx(1.1)  # mean of the last 5 losses
    assert float(rows[0]["denom_spread"]) == pytest.approx(100.0)  # 1.0 / 0.01, halfway record
    # AdamW's final loss 1.2: the 5-record moving mean of (2, 1.6, 1.3, 1.2, 1.1, 1.1, 1.1, ...)
    # is 1.44, 1.26, then 1.16 at the 7th record, logged at 35 s
    assert float(rows[1]["time_to_target_s_mean"]) == pytest.approx(35.0)
    assert rows[2]["time_to_target_s_mean"] == ""  # never reached
    markdown = paths[0].read_text()
    assert "| clipping | off | 3 epochs | 1 | 37.00 |" in markdown
    assert "not reached (1 of 1)" in markdown and "100×" in markdown
    telemetry = list(csv.DictReader((results / "demo" / "ablation" / "telemetry.csv").open()))
    assert {(t["block"], t["denom_median"]) for t in telemetry if t["factor"] == "baseline"} == {
        ("key", "0.01"), ("qa_outputs", "1")}
    png = results / "demo" / "ablation" / "ablation.png"
    assert png in paths and png.stat().st_size > 5000


def test_confirmation_figure_draws_every_seed_of_every_confirmed_setting(results, monkeypatch):
    import secondorder.report.ablation as ablation

    figures = []
    monkeypatch.setattr(ablation, "save_figure",
                        lambda fig, path, close=True: figures.append((fig, Path(path))) or path)
    paths = write_ablation(results, SPEC)
    assert results / "demo" / "ablation" / "confirmation.png" in paths
    fig = next(f for f, p in figures if p.name == "confirmation.png")
    f1_axes, loss_axes = fig.axes[:2]
    seeds = [line for line in f1_axes.lines if line.get_gid() == "seed"]
    # no_clip_10ep: seeds 1 and 2, one evaluation each (epoch 10, F1 40 and 33.3)
    assert sorted(tuple(line.get_ydata()) for line in seeds) == [(33.3,), (40.0,)]
    assert all(tuple(line.get_xdata()) == (10,) for line in seeds)
    (mean,) = [line for line in f1_axes.lines if line.get_gid() == "mean"]
    assert tuple(mean.get_xdata()) == (10,)
    assert mean.get_ydata()[0] == pytest.approx((40.0 + 33.3) / 2)
    (null,) = [line for line in f1_axes.lines if line.get_linestyle() == ":"]
    assert null.get_ydata()[0] == pytest.approx(33.3)
    # the loss panel: each seed's 10 logged losses (all 1.0, all 3.0) against their epochs, and
    # their mean
    assert [line.get_gid() for line in loss_axes.lines] == ["seed", "seed", "mean"]
    assert [list(line.get_ydata()) for line in loss_axes.lines] == [[1.0] * 10, [3.0] * 10,
                                                                    [2.0] * 10]
    assert list(loss_axes.lines[0].get_xdata()) == pytest.approx([i / 10 for i in range(1, 11)])
    assert loss_axes.get_ylim()[1] == pytest.approx(1.05 * 3.0)  # the largest loss, plus 5 %
    assert fig.legends[0].get_texts()[0].get_text() == "clipping: off (mean of 2 runs)"


def test_confirmation_loss_axis_leaves_out_the_first_half_epoch(tmp_path, monkeypatch):
    import secondorder.report.ablation as ablation

    figures = []
    monkeypatch.setattr(ablation, "save_figure",
                        lambda fig, path, close=True: figures.append((fig, Path(path))) or path)
    fake_run(tmp_path, "base", 1, 33.3, [2.0] * 10)
    # logged at epochs 0.1 ... 1.0; trailing means of up to 5: 9, 5, 3.67, 3, 2.6 (epoch 0.5), 1 ...
    fake_run(tmp_path, "no_clip_10ep", 1, 40.0, [9.0] + [1.0] * 9)
    write_ablation(tmp_path, {**SPEC, "screen": []})
    fig = next(f for f, p in figures if p.name == "confirmation.png")
    assert fig.axes[1].get_ylim()[1] == pytest.approx(1.05 * 2.6)  # not 1.05 * 9


def test_no_confirmation_figure_without_confirmation_runs(results):
    spec = {**SPEC, "confirm": [{"factor": "eps", "setting": "1e-2, 10 epochs",
                                 "experiment": "ablation/eps_10ep"}]}
    paths = write_ablation(results, spec)
    assert not any(p.name.startswith("confirmation") for p in paths)
    assert not (results / "demo" / "ablation" / "confirmation.png").exists()


def test_answers_from_is_the_first_epoch_past_the_margin():
    from secondorder.report.ablation import _answers_from
    from secondorder.runs import RunLogs

    def logs(f1s):  # 1000 questions, 333 unanswerable: the null F1 is 33.3
        evals = [{"epoch": e, "f1": f, "total": 1000, "NoAns_total": 333}
                 for e, f in enumerate(f1s, 1)]
        return RunLogs(Path("."), {}, [], evals, [], evals[-1])

    assert _answers_from(logs([33.3, 34.3, 34.4, 30.0])) == 3  # 34.3 is not above 33.3 + 1
    assert _answers_from(logs([33.3, 34.0, 33.3])) is None
    assert _answers_from(logs([40.0])) == 1


def test_answers_needs_every_run_above_the_margin():
    assert answers({"f1": [35.0, 40.0], "null_f1": [33.3, 33.3]})
    assert not answers({"f1": [35.0, 34.0], "null_f1": [33.3, 33.3]})
    assert not answers({"f1": [], "null_f1": []})


def test_plan_screens_with_one_seed_and_confirms_with_three():
    spec = load_spec()
    plan = ablation_plan(spec, [], ("screen", "confirm"))
    seeds: dict[str, list[int]] = {}
    for r in plan:
        seeds.setdefault(r["experiment"], []).append(r["seed"])
    screen = [f"demo/{e['experiment']}" for e in spec["screen"]]
    assert all(seeds[e][:1] == spec["screen_seeds"] for e in screen)
    assert seeds["demo/" + spec["reference"]] and seeds["demo/" + spec["baseline"]]
    for e in spec.get("confirm") or []:
        assert set(spec["confirm_seeds"]) <= set(seeds[f"demo/{e['experiment']}"])


def _flat(obj, prefix=""):
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


NAMES = ("experiment_name", "run_dir", "logger.group", "logger.tags")


def changed_keys(experiment: str, other: str) -> dict[str, tuple]:
    """Config keys (flattened, names and paths aside) whose values differ between two demo
    experiments: {key: (value in experiment, value in other)}."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        a, b = (_flat(OmegaConf.to_container(compose("train", [f"experiment=demo/{e}"]),
                                             resolve=True)) for e in (experiment, other))
    return {k: (a.get(k), b.get(k)) for k in set(a) | set(b)
            if a.get(k) != b.get(k) and k not in NAMES}


@pytest.mark.parametrize("entry", load_spec()["screen"], ids=lambda e: e["experiment"])
def test_each_factor_changes_what_is_trained(entry):
    changed = changed_keys(load_spec()["baseline"], entry["experiment"])
    if entry["factor"] == "baseline":  # the failing setting run again: exactly the same
        assert not changed, changed
        return
    assert changed, entry  # a factor that changes nothing would be a row that cannot differ
    assert all(k.startswith(("optimizer.", "trainer.", "schedule.")) for k in changed), changed


@pytest.mark.parametrize("entry", load_spec()["confirm"], ids=lambda e: e["experiment"])
def test_each_confirmation_is_a_three_epoch_run_stretched_to_ten(entry):
    """A confirmation config extends one screened run (or the baseline, or AdamW's reference)
    and changes its length only: 3 epochs become 10, everything else as screened."""
    spec = load_spec()
    text = (CONFIGS / "experiment" / "demo" / f"{entry['experiment']}.yaml").read_text()
    parent = OmegaConf.create(text)["defaults"][0].removeprefix("/experiment/demo/")
    assert parent in {e["experiment"] for e in spec["screen"]} | {spec["baseline"],
                                                                  spec["reference"]}, parent
    assert changed_keys(parent, entry["experiment"]) == {"trainer.epochs": (3, 10)}


def test_rows_of_one_scale_are_left_out_at_the_other():
    demo_only = [r["experiment"] for r in published("table1") if r["scales"] == "demo"]
    assert demo_only
    assert not set(demo_only) & set(needed_experiments(("table1",), scale="paper"))
    assert set(demo_only) <= set(needed_experiments(("table1",), scale="demo"))
    assert all(r["experiment"] not in demo_only for r in published("table1", scale="paper"))


def test_make_ablate_and_reproduce_train_into_results_unless_told_otherwise(monkeypatch):
    from secondorder.experiments.reproduce import published_overrides

    monkeypatch.delenv("SECONDORDER_RESULTS", raising=False)
    assert published_overrides(["seed=1"]) == ["results_root=results", "seed=1"]
    assert published_overrides(["results_root=/tmp/x"]) == ["results_root=/tmp/x"]
    plan = ablation_plan(load_spec(), published_overrides([]), ("screen",))
    assert plan and all(r["run_dir"].startswith("results/demo/") for r in plan)
    monkeypatch.setenv("SECONDORDER_RESULTS", "/elsewhere")
    assert published_overrides(["seed=1"]) == ["seed=1"]
