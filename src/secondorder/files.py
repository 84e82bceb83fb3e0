"""Files written so that a reader never sees half of one: JSON written atomically, JSON-lines
streams, and directories published by a rename. Used by the run directory (`secondorder.runs`)
and by the caches of tokenizers and packaged models."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["append_jsonl", "publish_directory", "read_json", "read_jsonl", "truncate_jsonl",
           "write_json"]


# ------------------------------------------------------------------------------- JSON files
def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    return str(obj)  # Path and anything else printable


def publish_directory(target: Path, fill, marker: str) -> Path:
    """Create directory `target` atomically: `fill(tmp)` writes a private sibling directory,
    which is then renamed into place, so a reader sees no `target` or a complete one. Several
    processes may do this at once (the jobs of a multirun sharing a cache): the first rename
    wins and the others use its copy (`target / marker` must exist then). Returns `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; a cache may be shared
        try:
            tmp.rename(target)
        except OSError:  # another process renamed its complete copy first: use that one
            if not (target / marker).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def write_json(path: str | Path, obj: Any, *, indent: int = 2) -> Path:
    """Write `obj` as JSON atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent, default=_json_default))
    tmp.replace(path)
    return path


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def _finite_or_text(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN / inf
    return value


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps({k: _finite_or_text(v) for k, v in record.items()}) + "\n")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Drop records logged after `max_step`: a resumed run recomputes those steps."""
    if path.exists():
        kept = [r for r in read_jsonl(path) if r.get("step", 0) <= max_step]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
