"""The step-cost benchmark (scripts/bench_step.py) at a tiny shape: the JSON it writes and AdamW's ratios of exactly 1."""

from __future__ import annotations

import json

import pytest


def load_script():
    from secondorder.experiments import bench

    return bench


@pytest.mark.slow  # benchmark subprocesses
def test_bench_step_tiny_cpu_run(tmp_path, monkeypatch):
    bench = load_script()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the per-setting child processes
    # the comparison's package is reported as missing, whether or not it is installed here
    monkeypatch.setattr(bench, "package_available", lambda name: False)
    argv = ["--device", "cpu", "--layers", "2", "--hidden", "64", "--batch-size", "2",
            "--seq-len", "32", "--steps", "2", "--warmup", "1",
            "--settings", "adamw,adahessian,pytorch_optimizer.AdaHessian",
            "--out", str(tmp_path)]
    result = bench.main(argv)

    files = sorted(tmp_path.iterdir())
    assert [f.suffix for f in files] == [".json", ".md"]
    assert files[0].name.startswith("step_cost_cpu-")
    data = json.loads(files[0].read_text())
    assert data == json.loads(json.dumps(result))
    assert data["device"].startswith("cpu-") and data["device_type"] == "cpu"
    assert {"torch", "transformers", "python"} <= set(data["env"])
    assert data["command"].endswith(" ".join(argv)) and "bench_step.py" in data["command"]
    assert data["shape"]["batch_size"] == 2 and data["shape"]["seq_len"] == 32
    assert data["shape"]["num_hidden_layers"] == 2 and data["shape"]["hidden_size"] == 64
    assert data["date"] and data["steps"] == 2 and data["warmup"] == 1
    assert data["memory_metric"] == "peak_rss_gib" and "ru_maxrss" in data["notes"]["memory"]
    assert [s["setting"] for s in data["skipped"]] == ["pytorch_optimizer.AdaHessian"]
    assert "pytorch_optimizer" in data["skipped"][0]["reason"]

    rows = {r["setting"]: r for r in data["rows"]}
    assert list(rows) == ["adamw", "adahessian"]
    for row in rows.values():
        assert row["status"] == "ok" and row["precision"] == "fp32"
        assert len(row["step_times_s"]) == 2 and row["step_time_mean_s"] > 0
        assert row["step_time_median_s"] > 0
        assert 0 < row["model_rss_gib"] < row["peak_rss_gib"]
        assert row["peak_rss_above_model_gib"] > 0
        assert row["minor_faults_per_step"] >= 0 and "round_time_ratios" not in row
        for key in ("time_ratio", "median_time_ratio", "memory_ratio", "peak_rss_ratio",
                    "peak_rss_above_model_ratio"):
            assert row[key] > 0
    adamw, adahessian = rows["adamw"], rows["adahessian"]
    for key in ("time_ratio", "median_time_ratio", "memory_ratio", "peak_rss_ratio",
                "peak_rss_above_model_ratio"):
        assert adamw[key] == 1.0
    assert adamw["curvature_steps"] == 0 and adahessian["curvature_steps"] == 2
    assert adahessian["optimizer"]["hessian_interval"] == 1
    assert adahessian["target"] and adahessian["meets_target"] is None  # not the H100 shape
    assert data["targets_apply"] is False

    table = files[1].read_text()
    assert "| setting | precision | s/step mean |" in table
    assert "| adamw | fp32 |" in table and "| adahessian | fp32 |" in table


@pytest.mark.slow  # benchmark subprocesses
def test_bench_step_demo_model_and_adasub_rows(tmp_path, monkeypatch):
    """--model albert_tiny (the demo's model; vocabulary from its tokenizer config) writes its own
    files, and an AdaSub row runs through the trainer protocol with its curvature steps."""
    bench = load_script()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    argv = ["--device", "cpu", "--model", "albert_tiny", "--batch-size", "2", "--seq-len", "32",
            "--steps", "2", "--warmup", "1", "--settings", "adamw,adasub_model_m2_reuse",
            "--out", str(tmp_path)]
    data = bench.main(argv)
    assert data["model"] == "configs/model/albert_tiny.yaml"
    assert data["shape"]["vocab_size"] == 3000 and data["shape"]["hidden_size"] == 64
    assert sorted(f.name for f in tmp_path.iterdir())[0].endswith("_albert_tiny.json")
    row = {r["setting"]: r for r in data["rows"]}["adasub_model_m2_reuse"]
    assert row["status"] == "ok" and row["curvature_steps"] == 2
    assert row["optimizer"]["mode"] == "model" and row["optimizer"]["reuse_products"] is True


def test_interleaved_adahessian_comparison_at_a_tiny_shape(tmp_path):
    """scripts/bench_ab.py: every implementation stepped round-robin, medians and ratios in JSON."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "bench_ab.py"
    spec = importlib.util.spec_from_file_location("bench_ab", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_ab"] = module
    spec.loader.exec_module(module)
    result = module.main(["--layers", "1", "--hidden", "32", "--batch-size", "2", "--seq-len",
                          "16", "--steps", "2", "--out", str(tmp_path)])
    data = json.loads(next(tmp_path.glob("adahessian_ab_*.json")).read_text())
    assert data == json.loads(json.dumps(result))
    names = [r["implementation"] for r in data["rows"]] + data["skipped"]
    assert names[:2] == ["ours", "ours, public algorithm"] and len(names) == 4
    for r in data["rows"]:
        assert len(r["step_times_s"]) == 2 and r["median_s"] > 0
    if len(data["rows"]) > 2:  # a public implementation is installed (make install)
        assert min(r["ratio_to_fastest_public"] for r in data["rows"][2:]) == 1.0


def test_rounds_interleave_pool_and_give_a_ratio_per_round(tmp_path, monkeypatch, capsys):
    """--rounds 3: every setting measured once a round, the order reversed every other round;
    a row pools its rounds' steps, keeps the largest memory peak, and has one ratio to the
    baseline per round. The child processes are replaced by hand-made measurements."""
    bench = load_script()
    calls = []
    # (setting, round) -> step times; round 2 of every setting is twice as slow (a drift)
    times = {"adamw": [1.0, 3.0], "sgd": [2.0, 2.0], "adahessian": [3.0, 5.0]}

    def fake_child(row, opts):
        name = row["setting"]
        rnd = sum(1 for c in calls if c == name)
        calls.append(name)
        steps = [t * (2 if rnd == 1 else 1) for t in times[name]]
        return {"parameters": 10, "step_times_s": steps, "step_time_mean_s": sum(steps) / 2,
                "step_time_median_s": sum(steps) / 2, "curvature_steps": 2 * (name == "adahessian"),
                "final_loss": 1.0, "model_rss_gib": 1.0 + rnd, "peak_rss_gib": 2.0 + rnd,
                "peak_rss_above_model_gib": 1.0, "minor_faults_per_step": 10.0 * (rnd + 1)}

    monkeypatch.setattr(bench, "measure_in_child", fake_child)
    data = bench.main(["--device", "cpu", "--layers", "2", "--hidden", "64", "--batch-size", "2",
                       "--seq-len", "32", "--steps", "2", "--warmup", "1", "--rounds", "3",
                       "--settings", "adamw,sgd,adahessian", "--out", str(tmp_path)])
    assert calls == ["adamw", "sgd", "adahessian", "adahessian", "sgd", "adamw",
                     "adamw", "sgd", "adahessian"]
    assert data["rounds"] == 3
    rows = {r["setting"]: r for r in data["rows"]}
    ah, aw = rows["adahessian"], rows["adamw"]
    assert ah["step_times_s"] == [3.0, 5.0, 6.0, 10.0, 3.0, 5.0]
    assert ah["step_time_mean_s"] == 32.0 / 6 and ah["step_time_median_s"] == 5.0
    assert ah["round_step_time_mean_s"] == [4.0, 8.0, 4.0]
    assert ah["round_time_ratios"] == [2.0, 2.0, 2.0]  # the drift cancels within each round
    assert aw["round_time_ratios"] == [1.0, 1.0, 1.0]
    assert rows["sgd"]["round_time_ratios"] == [1.0, 1.0, 1.0]
    assert ah["time_ratio"] == (32.0 / 6) / (16.0 / 6)
    assert ah["curvature_steps"] == 6 and aw["curvature_steps"] == 0
    assert ah["peak_rss_gib"] == 4.0 and ah["model_rss_gib"] == 3.0  # the largest of the rounds
    assert ah["minor_faults_per_step"] == 20.0
    table = (tmp_path / next(f.name for f in tmp_path.iterdir() if f.suffix == ".md")).read_text()
    assert "x AdamW in each round" in table and "| adahessian | fp32 |" in table
    assert "2.00, 2.00, 2.00" in table and "3 rounds" in table
    err = capsys.readouterr().err
    assert "[round 2/3, 1/3] adahessian" in err and "[round 3/3, 3/3] adahessian" in err


def test_rounds_must_be_positive(tmp_path):
    bench = load_script()
    try:
        bench.main(["--device", "cpu", "--rounds", "0", "--out", str(tmp_path)])
    except SystemExit as err:
        assert "--rounds" in str(err)
    else:
        raise AssertionError("--rounds 0 was accepted")


def test_timed_steps_cover_whole_refresh_periods():
    from secondorder.experiments.bench import bench_config, load_yaml, plan, whole_periods

    bench = load_yaml(bench_config())
    rows, _ = plan(bench, ["adamw", "soap", "shampoo_period100", "sophia_h"], False)
    assert {r["setting"]: r["period"] for r in rows} == {
        "adamw": 1, "soap": 10, "shampoo_period100": 100, "sophia_h": 10}
    assert whole_periods(rows, 10) == 100 and whole_periods(rows, 150) == 200
    soap_only, _ = plan(bench, ["soap"], False)  # the baseline is added, period 1
    assert whole_periods(soap_only, 10) == 10 and whole_periods(soap_only, 12) == 20
