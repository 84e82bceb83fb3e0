"""A user's finished run, published from outputs/ into results/: its summaries only, the
report reads it there exactly as it read it where it was trained, and nothing is overwritten."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from secondorder.report.tables import runs_table
from secondorder.runs import RunError, publish_run, read_logs
from tiny import TINY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run of `make demo`'s experiment, in <tmp>/outputs/ as a user's run."""
    tmp = tmp_path_factory.mktemp("publish")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"),
                          "experiment=demo/tiny_albert", *TINY, "trainer.epochs=1",
                          f"results_root={tmp / 'outputs'}", f"cache_dir={tmp / 'cache'}"],
                         capture_output=True, text=True, check=False, cwd=tmp)
    assert out.returncode == 0, out.stderr
    return tmp, tmp / "outputs" / "demo" / "tiny_albert" / "adamw-seed42"


def publish_script(*args: str, cwd: Path):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "publish.py"), *args],
                          capture_output=True, text=True, check=False, cwd=cwd)


def test_published_run_holds_its_summaries_and_reads_back_the_same(trained):
    tmp, run = trained
    out = publish_script(str(run), "--results", str(tmp / "results"), cwd=tmp)
    assert out.returncode == 0, out.stderr
    target = tmp / "results" / "demo" / "tiny_albert" / "adamw-seed42"
    assert f"published: {target}" in out.stdout
    assert sorted(p.name for p in target.iterdir()) == sorted(
        ["config.yaml", "complete.json", "eval.json", "epochs.jsonl", "evals.jsonl",
         "metrics.jsonl"])  # no checkpoints, tokenizer, predictions or Hydra folders
    for name in ("complete.json", "eval.json", "epochs.jsonl", "evals.jsonl", "metrics.jsonl"):
        assert (target / name).read_bytes() == (run / name).read_bytes()
    cfg, original = OmegaConf.load(target / "config.yaml"), OmegaConf.load(run / "config.yaml")
    assert cfg.run_dir == str(target) and cfg.results_root == str(tmp / "results")
    cfg.run_dir, cfg.results_root = original.run_dir, original.results_root
    assert cfg == original  # nothing else of the config changes
    here, there = read_logs(run), read_logs(target)
    assert (here.metrics, here.evals, here.final) == (there.metrics, there.evals, there.final)
    assert runs_table(tmp / "results", "demo", "tiny_albert") == \
        runs_table(tmp / "outputs", "demo", "tiny_albert")


def test_a_published_run_is_never_overwritten_unless_asked(trained):
    tmp, run = trained
    results = tmp / "again"
    assert publish_script(str(run), "--results", str(results), cwd=tmp).returncode == 0
    target = results / "demo" / "tiny_albert" / "adamw-seed42"
    (target / "eval.json").write_text("{}")
    out = publish_script(str(run), "--results", str(results), cwd=tmp)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "already holds a published run" in out.stderr and "Traceback" not in out.stderr
    assert (target / "eval.json").read_text() == "{}"
    assert publish_script(str(run), "--results", str(results), "--overwrite",
                          cwd=tmp).returncode == 0
    assert (target / "eval.json").read_bytes() == (run / "eval.json").read_bytes()


def test_an_unfinished_run_or_a_folder_that_is_no_run_is_refused(trained, tmp_path):
    _, run = trained
    unfinished = tmp_path / "copy"
    shutil.copytree(run, unfinished, ignore=shutil.ignore_patterns("checkpoints", "tokenizer"))
    (unfinished / "complete.json").unlink()
    with pytest.raises(RunError, match="has not finished"):
        publish_run(unfinished, tmp_path / "results")
    with pytest.raises(RunError, match="is not a run folder"):
        publish_run(tmp_path, tmp_path / "results")
    assert not (tmp_path / "results").exists()
