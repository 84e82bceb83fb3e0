"""Run logs: JSON lines in the run directory (always) and Weights & Biases (optional).

Files are the source of truth: tables and figures are rebuilt from `metrics.jsonl`,
`evals.jsonl`, `epochs.jsonl` and `eval.json`, never from W&B. W&B runs offline unless
`WANDB_MODE=online` (or `logger.mode=online`), so nothing needs an account.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from secondorder.runs import STREAMS, append_jsonl, truncate_jsonl


class RunLogger:
    """Writes training and evaluation records to the run directory and, if enabled, to W&B."""

    STREAMS = STREAMS

    def __init__(self, run_dir: Path, logger_cfg: Mapping, config: Mapping, *, resume_step: int | None):
        self.run_dir = run_dir
        self.paths = {name: run_dir / f"{name}.jsonl" for name in self.STREAMS}
        if resume_step is None:
            for path in self.paths.values():
                path.unlink(missing_ok=True)
        else:
            for path in self.paths.values():
                truncate_jsonl(path, resume_step)
        self.wandb = None
        if logger_cfg.get("name") == "wandb":
            self.wandb = _start_wandb(run_dir, logger_cfg, config, resume=resume_step is not None)

    def log(self, stream: str, record: Mapping[str, Any]) -> None:
        append_jsonl(self.paths[stream], record)
        if self.wandb is not None:
            prefix = {"metrics": "train", "evals": "eval", "epochs": "epoch",
                      "curvature": "curvature"}[stream]
            data = {f"{prefix}/{k}": v for k, v in record.items() if isinstance(v, int | float)}
            self.wandb.log(data, step=int(record["step"]))

    def summary(self, values: Mapping[str, Any]) -> None:
        if self.wandb is not None:
            self.wandb.summary.update(dict(values))

    def finish(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


class NullLogger:
    """What a data-parallel rank other than 0 logs: nothing (rank 0 writes the run's files)."""

    def log(self, stream: str, record: Mapping[str, Any]) -> None:
        pass

    def summary(self, values: Mapping[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


def _start_wandb(run_dir: Path, cfg: Mapping, config: Mapping, *, resume: bool):
    import wandb

    id_file = run_dir / "wandb_id.txt"
    if resume and id_file.exists():
        run_id = id_file.read_text().strip()
    else:
        run_id = secrets.token_hex(4)
        id_file.write_text(run_id)
    return wandb.init(
        project=cfg.get("project", "secondorder"),
        entity=cfg.get("entity"),
        group=cfg.get("group"),
        tags=list(cfg.get("tags") or []),
        name=cfg.get("run_name") or run_dir.name,
        dir=str(run_dir),
        mode=cfg.get("mode", "offline"),
        id=run_id,
        resume="allow",
        config=dict(config),
    )
