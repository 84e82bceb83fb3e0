"""The package's shape: its modules import one another without cycles, each layer only the
layers below it, and no module finds the checkout through a fixed number of parent folders."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "secondorder"

# what each subpackage (or top-level module) may import: the layers below it
BASE = {"environment", "files", "paths", "hub", "validation"}
ALLOWED = {
    **{name: set() for name in BASE},
    "models": BASE,
    "data": BASE | {"models"},
    "qa": BASE | {"data"},
    "curvature": BASE,
    "optim": BASE | {"curvature"},
    "runs": BASE | {"data", "models"},
    "train": BASE | {"data", "models", "qa", "curvature", "optim", "runs"},
    "report": BASE | {"curvature", "runs"},
    "experiments": BASE | {"data", "models", "qa", "curvature", "optim", "runs", "report", "train"},
}


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of the package that `name` imports, at any depth of its code (function-local
    and TYPE_CHECKING imports included)."""
    found = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            targets = [stem] + [f"{stem}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target != "secondorder":
                found.add(target)
    return found


def layer(module: str) -> str:
    return module.split(".")[1]


def test_every_layer_imports_only_the_layers_below_it():
    known = modules()
    assert set(ALLOWED) == {layer(m) for m in known if m != "secondorder"}
    wrong = sorted(f"{m} imports {d}" for m, p in known.items() if m != "secondorder"
                   for d in imports(m, p, known) if layer(d) != layer(m)
                   and layer(d) not in ALLOWED[layer(m)])
    assert not wrong, wrong


def test_no_import_cycles_between_modules():
    known = modules()
    graph = {m: imports(m, p, known) for m, p in known.items()}
    # a module's package __init__ importing it is not a cycle of two modules
    for m in graph:
        graph[m] = {d for d in graph[m] if not m.startswith(d + ".")}
    state: dict[str, int] = {}
    cycles = []

    def visit(m, trail):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(trail[trail.index(d):] + [d])
            elif d not in state:
                visit(d, trail + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_the_layer_table_catches_an_upward_import(tmp_path):
    # the checker itself: an optim module that imports train is reported
    known = {"secondorder.optim.x": tmp_path / "x.py", "secondorder.train.trainer": Path("t")}
    known["secondorder.optim.x"].write_text("def f():\n    from secondorder.train import trainer\n")
    found = imports("secondorder.optim.x", known["secondorder.optim.x"], known)
    assert found == {"secondorder.train.trainer"}
    assert "train" not in ALLOWED["optim"]


def test_no_module_finds_the_checkout_by_counting_parent_folders():
    offenders = [str(p.relative_to(SRC)) for p in PACKAGE.rglob("*.py")
                 if "Path(__file__).resolve().parents[" in p.read_text()]
    assert not offenders, offenders


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=SRC.parent, capture_output=True, text=True,
                          check=False)


def _makefile_recipe(target: str) -> list[str]:
    lines = (SRC.parent / "Makefile").read_text().splitlines()
    start = lines.index(f"{target}:")
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


@pytest.mark.skipif(not (SRC.parent / ".git").exists(), reason="needs the git checkout")
def test_make_clean_removes_only_what_git_ignores():
    removed = [word for line in _makefile_recipe("clean") if line.startswith("rm -rf")
               for word in line.split()[2:]]
    assert removed and "results" not in " ".join(removed)
    for path in removed:
        assert _git("check-ignore", "-q", f"{path}/x").returncode == 0, f"{path} is not ignored"
    assert not _git("ls-files", *removed).stdout  # nothing tracked lives there


@pytest.mark.skipif(not (SRC.parent / ".git").exists(), reason="needs the git checkout")
def test_runs_a_user_starts_go_where_git_does_not_look(monkeypatch):
    from hydra import compose, initialize_config_dir

    monkeypatch.delenv("SECONDORDER_RESULTS", raising=False)
    with initialize_config_dir(config_dir=str(SRC.parent / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=demo/tiny_albert"])  # make demo's run
    for name in ("metrics.jsonl", "eval.json", "config.yaml", "checkpoints/last.pt"):
        assert _git("check-ignore", "-q", f"{cfg.run_dir}/{name}").returncode == 0
    published = "results/demo/table1_adamw/adamw-seed42"  # while the published runs are kept
    assert _git("check-ignore", "-q", f"{published}/metrics.jsonl").returncode == 1
