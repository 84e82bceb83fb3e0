"""Training: `run(cfg)` builds everything from a Hydra config and writes a run directory."""

from secondorder.train.run import run

__all__ = ["run"]
