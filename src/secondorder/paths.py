"""Where the project's own files are: the checkout whose `configs/`, `scripts/` and `results/`
the experiments use. Found from the environment variable SECONDORDER_ROOT if it is set, else by
looking for `configs/train.yaml` in the working directory and its parents, then in the folders
above this package (an editable install)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

__all__ = ["ROOT_ENV", "configs_dir", "project_root"]

ROOT_ENV = "SECONDORDER_ROOT"
_MARKER = Path("configs") / "train.yaml"


@functools.cache
def project_root() -> Path:
    """The checkout's root directory; FileNotFoundError (one line that says what to do) if
    there is none."""
    env = os.environ.get(ROOT_ENV)
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / _MARKER).is_file():
            raise FileNotFoundError(f"{ROOT_ENV}={env} has no {_MARKER}; point it at a checkout "
                                    "of secondorder")
        return root
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / _MARKER).is_file():
                return folder
    raise FileNotFoundError(f"no checkout of secondorder found (no {_MARKER} in the working "
                            f"directory or above it): run from the checkout or set {ROOT_ENV}")


def configs_dir() -> Path:
    return project_root() / "configs"
