"""`make reproduce` in miniature: every run of Tables I, III and Figures 1-5 trains on tiny data
(one seed: mean ± std over seeds is tested in test_tables.py), then every table row and figure is
written; a second call trains nothing. Which runs take every seed is checked on the plan."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from secondorder.experiments.reproduce import planned_runs, reproduce
from secondorder.report.paper import FIGURES, published
from secondorder.runs import is_complete
from tiny import TINY

PARTS = ("table1", "table3", "figures")
slow = pytest.mark.slow  # trains every run of the report at a tiny size: minutes


def test_table1_rows_take_every_seed_and_the_other_runs_the_first(tmp_path):
    plan = planned_runs("demo", PARTS, [1, 2], [f"results_root={tmp_path}"])
    assert plan[0]["experiment"] == "demo/table1_adamw"  # the hand-offs start from it
    table1 = {r["experiment"] for r in published("table1")}
    seeds = {}
    for run in plan:
        seeds.setdefault(run["experiment"].split("/")[1], []).append(run["seed"])
        assert run["run_dir"].startswith(str(tmp_path)), run
    assert {e: s for e, s in seeds.items() if e in table1} == {e: [1, 2] for e in table1}
    # Table III's two other lrs, six figure runs
    assert {e: s for e, s in seeds.items() if e not in table1} == dict.fromkeys(
        set(seeds) - table1, [1]) and len(set(seeds) - table1) == 8


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reproduce")
    overrides = [*TINY, f"results_root={tmp / 'results'}", f"cache_dir={tmp / 'cache'}"]
    assert reproduce("demo", PARTS, [1], overrides) == 0
    return tmp / "results", overrides


@slow
def test_every_run_trains_and_is_complete(reproduced):
    results, overrides = reproduced
    plan = planned_runs("demo", PARTS, [1], overrides)
    assert len(plan) == len({r["experiment"] for r in published("table1")}) + 8
    for run in plan:
        assert is_complete(run["run_dir"]), run


@slow
def test_every_row_and_figure_is_written(reproduced):
    results, _ = reproduced
    for table in ("table1", "table3"):
        rows = list(csv.DictReader((results / "demo" / f"{table}.csv").open()))
        assert [r["row"] for r in rows] == [r["row"] for r in published(table)]
        for r in rows:
            assert r["f1_mean"] and float(r["time_per_epoch_s"]) > 0 and int(r["runs"]) == 1
        markdown = (results / "demo" / f"{table}.md").read_text()
        assert "| AdamW |" in markdown and "—" not in markdown.split("\n")[4]
    for name in FIGURES:
        for suffix in (".png", ".pdf"):
            path = results / "demo" / "figures" / f"{name}{suffix}"
            assert path.stat().st_size > 5000, path


@slow
def test_a_second_call_trains_nothing_and_changes_no_file(reproduced, capsys):
    results, overrides = reproduced
    before = {p: p.stat().st_mtime_ns for p in results.rglob("metrics.jsonl")}
    published_files = [results / "demo" / f for f in
                       ("reproduce.json", "table1.md", "table1.csv", "table3.md", "table3.csv")]
    contents = {p: p.read_bytes() for p in published_files}
    assert reproduce("demo", PARTS, [1], overrides) == 0
    assert capsys.readouterr().out.count(": done") == len(before)
    assert {p: p.stat().st_mtime_ns for p in results.rglob("metrics.jsonl")} == before
    # the tables rebuild byte-identical; reproduce.json records calls that trained something
    assert {p: p.read_bytes() for p in published_files} == contents
    import json

    calls = json.loads((results / "demo" / "reproduce.json").read_text())["calls"]
    assert len(calls) == 1 and calls[0]["parts"] == ["table1", "table3", "figures"]
    assert all(r["seconds"] > 0 for r in calls[0]["runs"])


NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def execute(notebook: Path, env: dict[str, str]):
    """Run a notebook top to bottom in a fresh kernel (no network), returning it with outputs."""
    import os

    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(notebook, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(notebook.parent)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


@slow
def test_notebooks_show_what_scripts_report_writes(reproduced, tmp_path):
    import subprocess
    import sys

    results, _ = reproduced
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, str(root / "scripts" / "report.py"), "all", "--scale", "demo",
                    "--results", str(results)], check=True, capture_output=True)
    env = {"SECONDORDER_RESULTS": str(results), "SECONDORDER_SCALE": "demo"}
    tables = execute(NOTEBOOKS / "01_tables.ipynb", env)
    shown = [o["data"]["text/markdown"] for c in tables.cells if c.cell_type == "code"
             for o in c.get("outputs", []) if "text/markdown" in o.get("data", {})]
    assert shown == [(results / "demo" / f"{t}.md").read_text() for t in ("table1", "table3")]
    figures = execute(NOTEBOOKS / "02_figures.ipynb", env)
    images = [o for c in figures.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) == len(FIGURES)
