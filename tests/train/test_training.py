"""Training on the embedded default: loss falls, evaluation writes the official files, a killed
run resumes to exactly the same result, curvature optimizers run through the same loop."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from secondorder.runs import is_complete, read_jsonl
from secondorder.train import run
from secondorder.train.trainer import NonFiniteLossError, StopRequested, Trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
METRIC_KEYS = {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact",
               "NoAns_f1", "NoAns_total", "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"}


def small_cfg(tmp_path: Path, *overrides: str):
    base = [
        "logger=none", "trainer.progress=false", f"results_root={tmp_path / 'results'}",
        f"cache_dir={tmp_path / 'cache'}", "experiment_name=test", "data.num_train=192",
        "data.num_validation=48", "data.max_length=128", "data.doc_stride=32",
        "data.max_question_length=32", "model.tokenizer.vocab_size=600",
        "model.config.hidden_size=32", "model.config.embedding_size=16",
        "model.config.intermediate_size=64", "model.config.num_hidden_layers=2",
        "model.config.num_attention_heads=2", "model.config.max_position_embeddings=128",
        "trainer.batch_size=16", "trainer.epochs=2", "trainer.log_every_steps=2",
        "optimizer.lr=3e-3", "eval.batch_size=32",
    ]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=base + list(overrides))


@pytest.fixture(scope="module")
def adamw_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adamw")
    cfg = small_cfg(tmp, "trainer.epochs=3", "trainer.log_every_steps=1")
    return cfg, run(cfg)


def test_loss_falls_and_eval_files_are_official(adamw_run):
    cfg, result = adamw_run
    run_dir = Path(cfg.run_dir)
    losses = [r["loss"] for r in read_jsonl(run_dir / "metrics.jsonl")]
    steps = read_jsonl(run_dir / "epochs.jsonl")[0]["steps"]
    assert steps >= 12  # 192 questions, some in two windows, 16 per batch
    assert len(losses) == 3 * steps  # logged every step, nothing lost or repeated
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.8 * first
    assert METRIC_KEYS <= set(result)
    assert result["total"] == 48 and result["HasAns_total"] + result["NoAns_total"] == 48
    predictions = json.loads((run_dir / "predictions.json").read_text())
    na_probs = json.loads((run_dir / "na_probs.json").read_text())
    assert len(predictions) == len(na_probs) == 48
    assert all(isinstance(v, str) for v in predictions.values())
    assert all(0.0 <= v <= 1.0 for v in na_probs.values())
    assert json.loads((run_dir / "eval.json").read_text())["f1"] == result["f1"]
    assert len(read_jsonl(run_dir / "evals.jsonl")) == 3  # one evaluation per epoch
    epochs = read_jsonl(run_dir / "epochs.jsonl")
    assert [e["epoch"] for e in epochs] == [1, 2, 3] and all(e["time_s"] > 0 for e in epochs)
    assert "rss_gib" in epochs[0]  # no GPU here: process memory instead
    assert (run_dir / "config.yaml").exists()


def test_complete_json_records_what_the_run_finished_on(adamw_run):
    import platform

    import transformers

    cfg, _ = adamw_run
    done = json.loads((Path(cfg.run_dir) / "complete.json").read_text())
    assert done["step"] == 3 * read_jsonl(Path(cfg.run_dir) / "epochs.jsonl")[0]["steps"]
    assert done["device"].startswith("cpu-") and len(done["device"]) > len("cpu-")
    env = done["environment"]
    assert env["torch"] == torch.__version__ and env["transformers"] == transformers.__version__
    assert env["python"] == platform.python_version()
    assert env["torch_threads"] == torch.get_num_threads()


def test_metric_cli_reproduces_the_run_scores(adamw_run, tmp_path):
    """The files a run writes are in the official formats: the stand-alone scorer agrees."""
    from secondorder.data.squad import load_records
    from secondorder.data.squad_files import write_squad_json
    from secondorder.qa.metric import main as metric_main

    cfg, result = adamw_run
    run_dir = Path(cfg.run_dir)
    dev = load_records(cfg.data)["validation"].to_list()
    data = write_squad_json(dev, tmp_path / "dev.json")
    scores = metric_main([str(data), str(run_dir / "predictions.json"),
                          "--na-prob-file", str(run_dir / "na_probs.json")])
    for key in METRIC_KEYS:
        assert scores[key] == pytest.approx(result[key])


def test_killed_run_resumes_to_the_same_result(tmp_path):
    # One tokenizer cache for both runs, as on one machine (WordPiece training itself is not
    # deterministic across calls; a resumed run reuses the tokenizer saved in its run dir).
    cache = f"cache_dir={tmp_path / 'cache'}"
    straight = small_cfg(tmp_path / "a", "trainer.checkpoint_every_steps=5", cache)
    expected = run(straight)
    # 13 steps per epoch (208 windows): killed in the second epoch, after the step-15 checkpoint
    killed = small_cfg(tmp_path / "b", "trainer.checkpoint_every_steps=5", cache,
                       "trainer.stop_after_steps=18")
    with pytest.raises(StopRequested):
        run(killed)
    assert is_complete(straight.run_dir) and not is_complete(killed.run_dir)
    (tmp_path / "cache").rename(tmp_path / "elsewhere")  # resuming must not need the cache
    resumed = run(small_cfg(tmp_path / "b", "trainer.checkpoint_every_steps=5", cache, "resume=true"))
    assert is_complete(killed.run_dir)
    for key in METRIC_KEYS:
        assert resumed[key] == expected[key]
    logs = [read_jsonl(Path(c.run_dir) / "metrics.jsonl") for c in (straight, killed)]
    strip = [[{k: v for k, v in r.items() if k in ("step", "loss", "lr")} for r in log] for log in logs]
    assert strip[0] == strip[1]  # no step lost or logged twice, identical losses


@pytest.mark.slow  # three killed-and-resumed runs
@pytest.mark.parametrize("optimizer", [
    ("optimizer=sophia_h", "optimizer.lr=1e-3", "optimizer.hessian_interval=3"),
    ("optimizer=soap", "optimizer.precondition_frequency=3"),
    ("optimizer=shampoo", "optimizer.preconditioning_compute_steps=3")],
    ids=["sophia_h", "soap", "shampoo"])
def test_killed_run_of_a_newer_optimizer_resumes_bit_identically(tmp_path, optimizer):
    # killed at step 8, resumed from the step-5 checkpoint: across the refresh at step 7
    cache = f"cache_dir={tmp_path / 'cache'}"
    common = (*optimizer, "trainer.epochs=1", "trainer.log_every_steps=1",
              "trainer.checkpoint_every_steps=5", cache)
    straight = small_cfg(tmp_path / "a", *common)
    expected = run(straight)
    killed = small_cfg(tmp_path / "b", *common, "trainer.stop_after_steps=8")
    with pytest.raises(StopRequested):
        run(killed)
    resumed = run(small_cfg(tmp_path / "b", *common, "resume=true"))
    for key in METRIC_KEYS:
        assert resumed[key] == expected[key]
    logs = [[(r["step"], r["loss"]) for r in read_jsonl(Path(c.run_dir) / "metrics.jsonl")]
            for c in (straight, killed)]
    assert logs[0] == logs[1]  # no step lost or logged twice, identical losses


def test_killed_adahessian_run_resumes_its_curvature_log(tmp_path):
    cache = f"cache_dir={tmp_path / 'cache'}"
    common = ("optimizer=adahessian", "optimizer.lr=1e-3", "optimizer.hessian_interval=2",
              "trainer.epochs=1", "trainer.log_every_steps=1", "trainer.checkpoint_every_steps=5",
              cache)
    straight = small_cfg(tmp_path / "a", *common)
    run(straight)
    killed = small_cfg(tmp_path / "b", *common, "trainer.stop_after_steps=8")
    with pytest.raises(StopRequested):
        run(killed)
    run(small_cfg(tmp_path / "b", *common, "resume=true"))
    logs = [read_jsonl(Path(c.run_dir) / "curvature.jsonl") for c in (straight, killed)]
    steps = read_jsonl(Path(straight.run_dir) / "epochs.jsonl")[0]["steps"]
    assert len(logs[0]) == steps > 8 and logs[0] == logs[1]


def test_fp16_run_skips_overflows_backs_off_and_resumes_exactly(tmp_path):
    """fp16 autocast (CPU) with loss scaling: a 2^12 start overflows here, the scale backs off to a
    working value, grows after clean intervals, and a killed run resumes to the same logs."""
    cache = f"cache_dir={tmp_path / 'cache'}"
    common = ("optimizer=adahessian", "optimizer.lr=1e-3", "trainer.mixed_precision=fp16",
              "trainer.loss_scale.init_scale=4096.0",
              "trainer.loss_scale.growth_interval=2", "trainer.epochs=1",
              "trainer.log_every_steps=1", "trainer.checkpoint_every_steps=5", cache)
    straight = small_cfg(tmp_path / "a", *common)
    run(straight)
    log = read_jsonl(Path(straight.run_dir) / "metrics.jsonl")
    scales = [r["loss_scale"] for r in log]
    assert log[-1]["overflow_skips"] >= 1 and min(scales) < 2.0**12
    assert any(b > a for a, b in zip(scales, scales[1:], strict=False))  # it grows again
    assert all(math.isfinite(r["loss"]) for r in log)
    state = torch.load(Path(straight.run_dir) / "checkpoints" / "last.pt", weights_only=False)
    # skipped steps do not count: the optimizer and the schedule saw only the others
    assert state["optimizer"]["secondorder"]["step"] == len(log) - log[-1]["overflow_skips"]
    assert state["scheduler"]["last_epoch"] == state["optimizer"]["secondorder"]["step"]
    killed = small_cfg(tmp_path / "b", *common, "trainer.stop_after_steps=8")
    with pytest.raises(StopRequested):
        run(killed)
    run(small_cfg(tmp_path / "b", *common, "resume=true"))
    keys = ("step", "loss", "lr", "loss_scale", "overflow_skips")
    logs = [[{k: r[k] for k in keys} for r in read_jsonl(Path(c.run_dir) / "metrics.jsonl")]
            for c in (straight, killed)]
    assert logs[0] == logs[1]


def test_max_steps_ends_the_run_mid_epoch_on_the_full_schedule(tmp_path):
    cfg = small_cfg(tmp_path, "trainer.max_steps=5", "trainer.log_every_steps=1")
    result = run(cfg)
    run_dir = Path(cfg.run_dir)
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in metrics] == [1, 2, 3, 4, 5]
    (evaluation,) = read_jsonl(run_dir / "evals.jsonl")
    assert evaluation["step"] == 5 and result["step"] == 5 and result["total"] == 48
    # the same first five steps as a full 2-epoch run: same losses, same (2-epoch) schedule
    cache = f"cache_dir={tmp_path / 'cache'}"  # small_cfg's own cache: the same tokenizer
    full = small_cfg(tmp_path / "full", "trainer.log_every_steps=1", cache)
    run(full)
    first = read_jsonl(Path(full.run_dir) / "metrics.jsonl")[:5]
    keep = ("step", "loss", "lr", "epoch")
    assert [{k: r[k] for k in keep} for r in metrics] == [{k: r[k] for k in keep} for r in first]
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert state["progress"]["finished"] and state["progress"]["step"] == 5
    again = run(small_cfg(tmp_path, "trainer.max_steps=5", "trainer.log_every_steps=1",
                          "resume=true"))
    assert again == result and read_jsonl(run_dir / "metrics.jsonl") == metrics  # nothing more


def test_handoff_switches_optimizer_at_the_epoch_boundary(tmp_path):
    cfg = small_cfg(tmp_path, "strategy=handoff", "strategy.first_epochs=1",
                    "strategy.first_schedule_epochs=2", "strategy.first_optimizer.lr=3e-3",
                    "optimizer=adahessian", "optimizer.lr=1e-3", "optimizer.hessian_power=0.5",
                    "trainer.keep_epoch_checkpoints=true", "trainer.log_every_steps=1")
    result = run(cfg)
    run_dir = Path(cfg.run_dir)
    epochs = read_jsonl(run_dir / "epochs.jsonl")
    assert [(e["epoch"], e["optimizer"]) for e in epochs] == [(1, "adamw"), (2, "adahessian")]
    lrs = [(r["optimizer"], r["lr"]) for r in read_jsonl(run_dir / "metrics.jsonl")]
    # AdamW follows a 2-epoch schedule cut after epoch 1; AdaHessian warms up afresh
    steps = epochs[0]["steps"]
    warmup = math.ceil(0.1 * 2 * steps)
    adamw_last = [lr for o, lr in lrs if o == "adamw"][-1]
    assert adamw_last == pytest.approx(3e-3 * (2 * steps - steps) / (2 * steps - warmup), rel=1e-6)
    adahessian = [lr for o, lr in lrs if o == "adahessian"]
    warmup2 = math.ceil(0.1 * steps)  # its own phase of one epoch
    assert warmup2 >= 2 and adahessian[0] == pytest.approx(1e-3 / warmup2, rel=1e-6)
    assert max(adahessian) == pytest.approx(1e-3, rel=1e-6)
    assert (run_dir / "checkpoints" / "epoch1.pt").exists() and result["total"] == 48
    # curvature telemetry: every AdaHessian log step, none for AdamW
    curvature = read_jsonl(run_dir / "curvature.jsonl")
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in curvature] == [r["step"] for r in metrics
                                              if r["optimizer"] == "adahessian"]
    for i, r in enumerate(curvature):
        for block in ("word_embeddings", "query", "ffn_in", "qa_outputs"):
            assert 0 < r[f"{block}/denom_p01"] <= r[f"{block}/denom_median"] <= r[f"{block}/denom_p99"]
            assert 0 <= r[f"{block}/eps_share"] <= 1 and 0 < r[f"{block}/negative_share"] < 1
            # the first step's lr is 0 (warm-up from 0), so is its update
            assert (r[f"{block}/update_ratio"] > 0) == (i > 0)
    # init_from: a second run starts AdaHessian from the first run's epoch-1 weights
    cont = small_cfg(tmp_path / "cont", "strategy=handoff", "strategy.first_epochs=1",
                     f"strategy.init_from={run_dir / 'checkpoints' / 'epoch1.pt'}",
                     "optimizer=adahessian", "optimizer.lr=1e-3", "optimizer.hessian_power=0.5")
    run(cont)
    assert [e["epoch"] for e in read_jsonl(Path(cont.run_dir) / "epochs.jsonl")] == [2]


@pytest.mark.parametrize("overrides", [
    ("optimizer=adahessian", "optimizer.lr=1e-3"),
    ("optimizer=adahessian", "optimizer.lr=1e-3", "optimizer.hessian_batch_fraction=0.5",
     "optimizer.hessian_interval=2"),
    ("optimizer=soaa", "optimizer.lr=1e-3"),
    ("optimizer=sgd", "optimizer.lr=1e-2"),
    ("optimizer=sophia_h", "optimizer.lr=1e-3", "optimizer.hessian_interval=3",
     "optimizer.hessian_batch_fraction=0.5"),
    ("optimizer=soap",),
    ("optimizer=shampoo", "optimizer.preconditioning_compute_steps=3"),
    ("optimizer=adasub", "optimizer.lr=1e-2"),
    ("optimizer=adasub", "optimizer.lr=1e-2", "optimizer.mode=model",
     "optimizer.reuse_products=true", "optimizer.n_directions=4",
     "optimizer.hessian_interval=2", "optimizer.hessian_batch_fraction=0.5"),
])
def test_every_optimizer_trains_through_the_same_loop(tmp_path, overrides):
    cfg = small_cfg(tmp_path, "trainer.epochs=1", "data.num_train=64", *overrides)
    result = run(cfg)
    records = read_jsonl(Path(cfg.run_dir) / "metrics.jsonl")
    steps = read_jsonl(Path(cfg.run_dir) / "epochs.jsonl")[0]["steps"]
    assert [r["step"] for r in records] == sorted({*range(2, steps + 1, 2), steps})
    assert all(torch.isfinite(torch.tensor([r["loss"] for r in records])))
    assert result["total"] == 48
    if "optimizer=adasub" in overrides:  # its counters are logged, and zero in normal training
        assert all(r["adasub/fallbacks"] == 0 and r["adasub/skipped"] == 0 for r in records)


def test_non_finite_loss_stops_with_the_step(tmp_path, monkeypatch):
    original = Trainer._loss
    calls = {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        loss = original(self, batch)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(Trainer, "_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 3"):
        run(small_cfg(tmp_path))


def test_wandb_logger_offline_gets_the_same_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = small_cfg(tmp_path, "logger=wandb", "trainer.epochs=1", "data.num_train=32")
    cfg.logger.mode = "offline"
    result = run(cfg)
    run_dir = Path(cfg.run_dir)
    run_id = (run_dir / "wandb_id.txt").read_text().strip()
    offline = list((run_dir / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(offline) == 1  # one offline W&B run in the run directory, syncable later
    assert result["total"] == 48
