"""Everything to verify on a GPU, in one command (make gpu-check): about 8 minutes on one H100.

    python scripts/gpu_check.py --dry-run          # the plan and the packages; runs nothing
    python scripts/gpu_check.py                    # on a GPU node
    python scripts/gpu_check.py --wheels ~/wheels  # no internet: install what is missing first
    python scripts/gpu_check.py --steps bench      # some of the steps

The steps and their time limits: configs/gpu_check.yaml (the GPU-marked tests, the step-cost
benchmark with bf16 rows, short fine-tunes of the pretrained MiniLM with AdamW and AdaHessian).
Writes results/gpu_check/<device>.json: per step its command, exit code, wall time and what it
measured (test counts, the benchmark's rows, each fine-tune's F1 and peak GPU memory), beside
the device, the versions and this command. A step that fails is recorded; the others still run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "gpu_check.yaml"


def missing(packages: dict[str, str]) -> list[str]:
    return [wheel for module, wheel in packages.items() if importlib.util.find_spec(module) is None]


def command(step: dict[str, Any], out: Path) -> list[str]:
    py = sys.executable
    args = [str(a) for a in step.get("args", [])]
    if step["kind"] == "pytest":
        return [py, "-m", "pytest", *args]
    if step["kind"] == "bench":
        return [py, "scripts/bench_step.py", *args, "--out", str(out / "bench")]
    if step["kind"] == "train":
        return [py, "scripts/train.py", *args, "logger=none", "trainer.progress=false",
                f"results_root={out / 'runs'}", f"run_name={step['name']}", "overwrite=true"]
    raise SystemExit(f"gpu_check: step {step['name']}: unknown kind {step['kind']!r}")


def measured(step: dict[str, Any], out: Path, output: str) -> dict[str, Any]:
    """What a finished step measured, read from its output and files."""
    if step["kind"] == "pytest":
        counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", output)}
        return {"tests": counts}
    if step["kind"] == "bench":
        files = sorted((out / "bench").glob("step_cost_*.json"))
        if not files:
            return {}
        data = json.loads(files[-1].read_text())
        keep = ("setting", "precision", "status", "step_time_mean_s", "time_ratio",
                "memory_ratio", "meets_target", "error")
        return {"bench_file": str(files[-1].relative_to(ROOT)) if files[-1].is_relative_to(ROOT)
                else str(files[-1]), "targets_apply": data.get("targets_apply"),
                "rows": [{k: r.get(k) for k in keep if k in r} for r in data["rows"]]}
    runs = sorted((out / "runs").glob(f"*/{step['name']}"))
    if not runs:
        return {}
    run = runs[-1]
    result: dict[str, Any] = {"run_dir": str(run)}
    if (run / "eval.json").exists():
        ev = json.loads((run / "eval.json").read_text())
        result.update({k: ev.get(k) for k in ("f1", "exact", "step", "train_time_s")})
    if (run / "metrics.jsonl").exists():
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        for key in ("gpu_mem_peak_allocated_gib", "gpu_mem_peak_reserved_gib", "step_time_s"):
            values = [r[key] for r in records if key in r]
            if values:
                result[f"max_{key}" if "mem" in key else f"median_{key}"] = (
                    max(values) if "mem" in key else sorted(values)[len(values) // 2])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="print the plan; run nothing")
    p.add_argument("--steps", default=None, help="comma-separated step names (default: all)")
    p.add_argument("--wheels", type=Path, default=None,
                   help="a folder of wheels: pip-install the missing packages from it, offline")
    p.add_argument("--config", type=Path, default=CONFIG)
    p.add_argument("--out", type=Path, default=None, help="default from the config")
    a = p.parse_args(argv)
    cfg = yaml.safe_load(a.config.read_text())
    out = a.out or ROOT / cfg["out"]
    steps = cfg["steps"]
    if a.steps:
        wanted = [s.strip() for s in a.steps.split(",") if s.strip()]
        unknown = sorted(set(wanted) - {s["name"] for s in steps})
        if unknown:
            raise SystemExit(f"gpu_check: unknown step(s) {unknown}; known: "
                             f"{[s['name'] for s in steps]}")
        steps = [s for s in steps if s["name"] in wanted]

    need, optional = missing(cfg["packages"]), missing(cfg.get("optional_packages") or {})
    if need and a.wheels and not a.dry_run:
        pip = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links",
               str(a.wheels), *need]
        print("gpu_check: installing", " ".join(need), "from", a.wheels, flush=True)
        if subprocess.run(pip, check=False).returncode != 0:
            raise SystemExit(f"gpu_check: could not install {need} from {a.wheels}; put their "
                             "wheels there (pip download <names> -d DIR where there is internet)")
        need = missing(cfg["packages"])

    print(f"gpu_check: {len(steps)} step(s), writing {out}")
    for s in steps:
        print(f"  {s['name']} (<= {s['timeout_s']} s): {' '.join(s['what'].split())}")
        print(f"    $ {shlex.join(command(s, out))}")
    if need:
        print(f"gpu_check: missing packages: {', '.join(need)} (pip install them, or pass "
              "--wheels DIR with their wheels)")
    if optional:
        print(f"gpu_check: optional, missing (their bench rows are skipped): {', '.join(optional)}")
    if a.dry_run:
        return 0
    if need:
        return 2
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: torch.cuda.is_available() is False; run it on a GPU node "
                         "(--dry-run shows the plan anywhere)")

    out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0)
    record: dict[str, Any] = {
        "device": device, "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "scripts/gpu_check.py", *(argv or sys.argv[1:])]),
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda,
                     "python": platform.python_version()},
        "steps": [],
    }
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    path = out / f"{slug}.json"
    for s in steps:
        cmd = command(s, out)
        print(f"gpu_check: {s['name']} ...", flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                                  timeout=s["timeout_s"], check=False)
            rc, text = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as err:
            rc = "timeout"
            text = (err.stdout or b"").decode(errors="replace") if isinstance(
                err.stdout, bytes) else (err.stdout or "")
        wall = time.perf_counter() - t0
        entry = {"name": s["name"], "what": " ".join(s["what"].split()), "command": shlex.join(cmd),
                 "returncode": rc, "wall_s": round(wall, 1), **measured(s, out, text),
                 "output_tail": text[-3000:]}
        record["steps"].append(entry)
        path.write_text(json.dumps(record, indent=2) + "\n")  # after every step: nothing lost
        print(f"gpu_check: {s['name']}: exit {rc} after {wall:.0f} s", flush=True)
    print(f"gpu_check: wrote {path}")
    return 0 if all(e["returncode"] == 0 for e in record["steps"]) else 1


if __name__ == "__main__":
    sys.exit(main())
