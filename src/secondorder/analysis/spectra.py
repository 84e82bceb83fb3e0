"""Full and blockwise Hessian spectra of a model's loss (Zhang et al. 2024, Sections 2.2-2.3).

The operator
------------
:class:`ModelHessian` is the Hessian of a *fixed* loss

    L(w) = (1 / n) * sum_i loss_fn(model, batch_i)        (``average=True``, the default)

over a fixed list of batches, evaluated with the model in ``eval()`` mode (no dropout; the
training flag is restored afterwards) and with scaled-dot-product attention forced to the
``MATH`` kernel (``torch.nn.attention.sdpa_kernel(SDPBackend.MATH)``), whose backward is made of
ordinary differentiable ops, so a double backward exists (the fused/flash kernels have none).
Each product accumulates, batch by batch, ``d/dw (g_i . v)`` with ``g_i`` the batch gradient
built with ``create_graph=True`` (Pearlmutter's trick), using
:func:`secondorder.optim.curvature.hessian_vector_product`. The paper's public code *sums* the
batch products (no ``1 / n``); pass ``average=False`` for that scaling.

Blockwise operators
-------------------
For a parameter block ``l`` the operator is the principal sub-matrix ``H_ll``: the vector is
non-zero only on block ``l`` and the product is read only on block ``l``. It is computed as
``d/dw_l (g_l . v_l)``: the first backward still depends on all parameters, but the second one
is taken only with respect to ``w_l``.

Several blocks may advance together (:meth:`ModelHessian.block_matvecs`), but only *exactly*:
putting each block's vector into its own slot of one big vector and doing a single product would
return ``sum_k H_lk v_k`` on block ``l``, i.e. the off-diagonal blocks would leak in. What is
shared instead is the forward pass and the first (``create_graph=True``) backward of every batch;
then one second backward per block, ``d/dw_l (g_l . v_l)``, is taken from the retained graph.
This is exact and saves ``(L - 1)`` forwards and first backwards per batch and Lanczos step
(the public hessian-spectrum code does the same).
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from secondorder.analysis.lanczos import (
    DEFAULT_SIGMA2,
    LanczosRecurrence,
    Quadrature,
    adaptive_grid,
    density,
    extreme_eigenvalues,
    random_start,
    slq,
    tridiagonal_quadrature,
)
from secondorder.optim.curvature import hessian_vector_product

__all__ = [
    "ModelHessian",
    "BlockOperator",
    "SpectrumEstimate",
    "BlockwiseSpectra",
    "resolve_blocks",
    "blockwise_spectra",
    "full_spectrum",
    "default_albert_blocks",
    "common_grid",
]

LossFn = Callable[[nn.Module, object], Tensor]


@contextlib.contextmanager
def hessian_mode(model: nn.Module):
    """``model.eval()`` plus the ``MATH`` attention kernel; restores the training flags after."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        for m, t in flags.items():
            m.training = t


class ModelHessian:
    """Matrix-free Hessian of a fixed loss over fixed batches (see the module docstring).

    ``params`` selects the variables (name -> parameter); by default all parameters of
    ``model`` that require gradients, in ``named_parameters`` order. Flat vectors follow that
    order, each parameter flattened row-major. Vectors are cast to each parameter's dtype for the
    product; results are returned in float64 on the parameters' device.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        batches: Sequence,
        params: Mapping[str, nn.Parameter] | None = None,
        *,
        average: bool = True,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.batches = list(batches)
        if not self.batches:
            raise ValueError("at least one batch is needed")
        if params is None:
            params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.names = list(params)
        self.params = [params[n] for n in self.names]
        if not self.params:
            raise ValueError("no parameters to differentiate")
        self.index = {n: i for i, n in enumerate(self.names)}
        self.numels = [p.numel() for p in self.params]
        self.dim = int(sum(self.numels))
        self.average = average
        self.device = self.params[0].device
        self.num_products = 0  # number of (block) Hessian-vector products evaluated

    # -- helpers -------------------------------------------------------------------------
    def split(self, flat: Tensor, names: Sequence[str] | None = None) -> list[Tensor]:
        """Cut a flat vector into per-parameter tensors (for ``names``, default all)."""
        names = self.names if names is None else names
        sizes = [self.numels[self.index[n]] for n in names]
        if flat.numel() != sum(sizes):
            raise ValueError(f"vector has {flat.numel()} entries, expected {sum(sizes)}")
        parts = torch.split(flat.reshape(-1), sizes)
        return [
            part.reshape(self.params[self.index[n]].shape).to(
                dtype=self.params[self.index[n]].dtype, device=self.params[self.index[n]].device
            )
            for n, part in zip(names, parts, strict=True)
        ]

    @staticmethod
    def _flat(tensors: Iterable[Tensor]) -> Tensor:
        return torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])

    def block_dim(self, names: Sequence[str]) -> int:
        return int(sum(self.numels[self.index[n]] for n in names))

    # -- products ------------------------------------------------------------------------
    def block_matvecs(self, vectors: Mapping[str, tuple[Sequence[str], Tensor]]) -> dict:
        """Exact diagonal-block products ``H_ll v_l`` for several blocks, sharing forwards.

        ``vectors`` maps a block key to ``(parameter names, flat vector on those parameters)``.
        Returns ``{key: flat float64 H_ll v_l}``. Per batch: one forward, one first backward
        with ``create_graph=True`` for the union of the blocks' parameters, then one second
        backward per block (see the module docstring for why a single product of the stacked
        vector would not be the block-diagonal product).
        """
        if not vectors:
            return {}
        keys = list(vectors)
        needed = sorted({self.index[n] for k in keys for n in vectors[k][0]})
        pos = {i: j for j, i in enumerate(needed)}
        needed_params = [self.params[i] for i in needed]
        split = {k: self.split(vectors[k][1], vectors[k][0]) for k in keys}
        acc: dict = {k: None for k in keys}
        with hessian_mode(self.model):
            for batch in self.batches:
                with torch.enable_grad():
                    loss = self.loss_fn(self.model, batch)
                    grads = torch.autograd.grad(
                        loss, needed_params, create_graph=True, allow_unused=True
                    )
                for j, k in enumerate(keys):
                    names = vectors[k][0]
                    idx = [pos[self.index[n]] for n in names]
                    hv = hessian_vector_product(
                        [grads[i] for i in idx],
                        [needed_params[i] for i in idx],
                        split[k],
                        retain_graph=j < len(keys) - 1,
                    )
                    flat = self._flat(hv)
                    acc[k] = flat if acc[k] is None else acc[k] + flat
                    self.num_products += 1
                del loss, grads
        scale = 1.0 / len(self.batches) if self.average else 1.0
        return {k: v * scale for k, v in acc.items()}

    def matvec(self, vec: Tensor) -> Tensor:
        """Full Hessian-vector product ``H v`` (flat, float64)."""
        return self.block_matvecs({"_all": (self.names, vec)})["_all"]

    def block_operator(self, names_or_globs: str | Sequence[str]) -> BlockOperator:
        """The diagonal block ``H_ll`` for the parameters matching the glob(s) (exact names too)."""
        pats = [names_or_globs] if isinstance(names_or_globs, str) else list(names_or_globs)
        names = [n for n in self.names if any(fnmatch.fnmatchcase(n, p) for p in pats)]
        if not names:
            raise KeyError(f"no parameter matches {pats}")
        return BlockOperator(self, names)

    def loss(self) -> float:
        """The fixed loss itself (same mode and averaging as the products)."""
        total = 0.0
        with hessian_mode(self.model), torch.no_grad():
            for batch in self.batches:
                total += float(self.loss_fn(self.model, batch))
        return total / len(self.batches) if self.average else total


class BlockOperator:
    """``H_ll`` of one parameter block: ``.matvec(flat)`` on the block's ``.dim`` coordinates."""

    def __init__(self, hessian: ModelHessian, names: Sequence[str]) -> None:
        self.hessian = hessian
        self.names = list(names)
        self.dim = hessian.block_dim(self.names)

    def matvec(self, vec: Tensor) -> Tensor:
        return self.hessian.block_matvecs({"_b": (self.names, vec)})["_b"]

    __call__ = matvec


# -- block partitions -------------------------------------------------------------------------


def resolve_blocks(
    names: Iterable[str], blocks: Mapping[str, Sequence[str]]
) -> tuple[dict[str, list[str]], list[str]]:
    """Match parameter names against ``blocks`` (block name -> globs).

    Returns ``({block: [parameter names]}, unmatched names)``. Raises ``ValueError`` when a
    parameter matches more than one block or a block matches no parameter.
    """
    names = list(names)
    out: dict[str, list[str]] = {b: [] for b in blocks}
    owner: dict[str, str] = {}
    for n in names:
        for b, pats in blocks.items():
            if any(fnmatch.fnmatchcase(n, p) for p in pats):
                if n in owner:
                    raise ValueError(f"parameter {n!r} matches blocks {owner[n]!r} and {b!r}")
                owner[n] = b
                out[b].append(n)
    empty = [b for b, ns in out.items() if not ns]
    if empty:
        raise ValueError(f"blocks match no parameter: {empty}")
    return out, [n for n in names if n not in owner]


_ALBERT_LAYER = re.compile(r"albert_layer_groups\.(\d+)\.albert_layers\.(\d+)\.")

_ALBERT_LAYER_ROLES = (
    ("query", "attention.query.*"),
    ("key", "attention.key.*"),
    ("value", "attention.value.*"),
    ("attention_output", "attention.dense.*"),
    ("attention_layernorm", "attention.LayerNorm.*"),
    ("ffn_in", "ffn.*"),
    ("ffn_out", "ffn_output.*"),
    ("ffn_layernorm", "full_layer_layer_norm.*"),
)


def default_albert_blocks(model: nn.Module, *, strict: bool = False) -> dict[str, list[str]]:
    """Default block partition of a Hugging Face ALBERT (``AlbertModel`` or a task model).

    Blocks (each takes a module's weight and bias together):
    ``word_embeddings``, ``position_embeddings``, ``token_type_embeddings``,
    ``embedding_layernorm``, ``embedding_projection`` (``embedding_hidden_mapping_in``), and for
    the shared layer ``query``, ``key``, ``value``, ``attention_output`` (``attention.dense``),
    ``attention_layernorm``, ``ffn_in`` (``ffn``), ``ffn_out`` (``ffn_output``),
    ``ffn_layernorm`` (``full_layer_layer_norm``), then ``pooler`` (``AlbertModel``) and
    ``qa_outputs`` (question answering) when present. With several layer groups / inner layers
    the shared-layer blocks are prefixed ``group{g}.layer{i}.``.

    Values are glob lists for :func:`resolve_blocks` / :func:`blockwise_spectra`. Parameters
    matched by no block are reported with a warning (``strict=True``: ``ValueError``).
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    blocks: dict[str, list[str]] = {}
    top = (
        ("word_embeddings", "*embeddings.word_embeddings.*"),
        ("position_embeddings", "*embeddings.position_embeddings.*"),
        ("token_type_embeddings", "*embeddings.token_type_embeddings.*"),
        ("embedding_layernorm", "*embeddings.LayerNorm.*"),
        ("embedding_projection", "*encoder.embedding_hidden_mapping_in.*"),
    )
    for b, pat in top:
        if any(fnmatch.fnmatchcase(n, pat) for n in names):
            blocks[b] = [pat]
    layers = sorted({(int(m[1]), int(m[2])) for n in names if (m := _ALBERT_LAYER.search(n))})
    for g, i in layers:
        prefix = "" if len(layers) == 1 else f"group{g}.layer{i}."
        for role, pat in _ALBERT_LAYER_ROLES:
            glob = f"*albert_layer_groups.{g}.albert_layers.{i}.{pat}"
            if any(fnmatch.fnmatchcase(n, glob) for n in names):
                blocks[prefix + role] = [glob]
    for b, pat in (("pooler", "*pooler.*"), ("qa_outputs", "*qa_outputs.*")):
        if any(fnmatch.fnmatchcase(n, pat) for n in names):
            blocks[b] = [pat]
    _, unmatched = resolve_blocks(names, blocks)
    if unmatched:
        msg = f"default_albert_blocks: parameters in no block: {unmatched}"
        if strict:
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=2)
    return blocks


# -- spectra ------------------------------------------------------------------------------------


@dataclass
class SpectrumEstimate:
    """SLQ result for one operator: quadrature runs, extreme Ritz values, density on ``grid``."""

    name: str
    dim: int
    runs: list[Quadrature]
    lambda_min: float
    lambda_max: float
    density: np.ndarray | None = None
    params: list[str] = field(default_factory=list)

    def to_json(self, with_density: bool = True) -> dict:
        out = {
            "name": self.name,
            "dim": self.dim,
            "params": self.params,
            "lambda_min": self.lambda_min,
            "lambda_max": self.lambda_max,
            "nodes": [r.nodes.tolist() for r in self.runs],
            "weights": [r.weights.tolist() for r in self.runs],
        }
        if with_density and self.density is not None:
            out["density"] = self.density.tolist()
        return out


@dataclass
class BlockwiseSpectra:
    """Blockwise spectra on a common grid (densities integrate to 1 on it)."""

    grid: np.ndarray
    blocks: dict[str, SpectrumEstimate]
    sigma2: float
    scale_by_range: bool

    @property
    def densities(self) -> dict[str, np.ndarray]:
        return {k: v.density for k, v in self.blocks.items()}

    def to_json(self, with_density: bool = True) -> dict:
        return {
            "grid": self.grid.tolist() if with_density else None,
            "sigma2": self.sigma2,
            "scale_by_range": self.scale_by_range,
            "blocks": {k: v.to_json(with_density) for k, v in self.blocks.items()},
        }


def common_grid(
    all_runs: Iterable[Sequence], num_points: int = 20_000, pad: float | None = None
) -> np.ndarray:
    """Uniform grid spanning the nodes of every run of every block (see ``default_grid``)."""
    runs = [r for rs in all_runs for r in rs]
    lo, hi = extreme_eigenvalues(runs)
    if pad is None:
        pad = 0.05 * (hi - lo) + 10.0 * DEFAULT_SIGMA2**0.5
    return np.linspace(lo - pad, hi + pad, int(num_points))


def blockwise_spectra(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence,
    blocks: Mapping[str, Sequence[str]],
    *,
    num_steps: int = 100,
    num_runs: int = 10,
    seed: int = 0,
    grid: np.ndarray | str | None = None,
    grid_points: int = 20_000,
    sigma2: float = DEFAULT_SIGMA2,
    scale_by_range: bool = False,
    distribution: str = "rademacher",
    reorthogonalize: bool = True,
    average: bool = True,
    progress: bool = False,
    desc: str = "blockwise SLQ",
) -> BlockwiseSpectra:
    """SLQ spectra of the diagonal Hessian blocks ``H_ll`` of a fixed loss.

    ``blocks`` maps block names to parameter-name globs (:func:`resolve_blocks`; parameters in
    no block are simply not analysed). For each of ``num_runs`` random start vectors (drawn from
    a CPU generator seeded with ``seed``, block by block in ``blocks`` order), the Lanczos
    recurrences of all blocks advance in lockstep: every step costs one forward and one first
    backward per batch plus one second backward per block (exact, see the module docstring).
    A block whose recurrence breaks down drops out of later products.

    Memory: with ``reorthogonalize=True`` every block keeps its Lanczos basis,
    ``num_steps * block_dim`` float64 numbers (all blocks of ALBERT-base at ``num_steps=100``:
    about 9 GB); pass ``reorthogonalize=False`` (the paper's plain recurrence, three vectors per
    block) for large models.

    The densities are Gaussian-blurred (:func:`secondorder.analysis.lanczos.density`, variance
    ``sigma2``, optionally scaled by each block's range) on a common grid: ``grid`` if an array,
    ``grid_points`` uniform points spanning all blocks' Ritz values if None, or
    ``grid="adaptive"`` for :func:`secondorder.analysis.lanczos.adaptive_grid` (resolves the
    blur around every node however far apart the blocks' spectra are; non-uniform).
    """
    hess = ModelHessian(model, loss_fn, batches, average=average)
    resolved, _ = resolve_blocks(hess.names, blocks)
    gen = torch.Generator().manual_seed(int(seed))
    runs: dict[str, list[Quadrature]] = {b: [] for b in resolved}
    dims = {b: hess.block_dim(ns) for b, ns in resolved.items()}
    steps = {b: min(num_steps, d) for b, d in dims.items()}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_runs * max(steps.values()), desc=desc, leave=False)
    for _ in range(num_runs):
        recs = {
            b: LanczosRecurrence(
                random_start(dims[b], distribution, generator=gen).to(hess.device),
                steps[b],
                reorthogonalize=reorthogonalize,
            )
            for b in resolved
        }
        taken = 0
        while True:
            active = {b: (resolved[b], r.vector) for b, r in recs.items() if not r.done}
            if not active:
                break
            products = hess.block_matvecs(active)
            for b, hv in products.items():
                recs[b].step(hv)
            taken += 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.update(max(steps.values()) - taken)
        for b, r in recs.items():
            runs[b].append(tridiagonal_quadrature(*r.coefficients()))
    if bar is not None:
        bar.close()
    if grid is None:
        grid = common_grid(runs.values(), grid_points)
    elif isinstance(grid, str):
        if grid != "adaptive":
            raise ValueError(f"grid must be an array, None or 'adaptive', got {grid!r}")
        grid = adaptive_grid([r for rs in runs.values() for r in rs], sigma2=sigma2)
    grid = np.asarray(grid, dtype=np.float64)
    out = {}
    for b, rs in runs.items():
        lo, hi = extreme_eigenvalues(rs)
        rho = density(rs, grid, sigma2=sigma2, scale_by_range=scale_by_range)
        out[b] = SpectrumEstimate(b, dims[b], rs, lo, hi, rho, params=resolved[b])
    return BlockwiseSpectra(grid=grid, blocks=out, sigma2=sigma2, scale_by_range=scale_by_range)


def full_spectrum(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence,
    *,
    params: Mapping[str, nn.Parameter] | None = None,
    num_steps: int = 100,
    num_runs: int = 10,
    seed: int = 0,
    grid: np.ndarray | None = None,
    grid_points: int = 20_000,
    sigma2: float = DEFAULT_SIGMA2,
    scale_by_range: bool = False,
    distribution: str = "rademacher",
    reorthogonalize: bool = True,
    average: bool = True,
    progress: bool = False,
) -> tuple[np.ndarray, SpectrumEstimate]:
    """SLQ spectrum of the full Hessian ``H`` of the fixed loss. Returns ``(grid, estimate)``."""
    hess = ModelHessian(model, loss_fn, batches, params, average=average)
    gen = torch.Generator().manual_seed(int(seed))

    def matvec(v: Tensor) -> Tensor:
        return hess.matvec(v.to(hess.device))

    runs = slq(
        matvec,
        hess.dim,
        device=hess.device,
        num_steps=num_steps,
        num_runs=num_runs,
        distribution=distribution,
        generator=gen,
        reorthogonalize=reorthogonalize,
        progress=progress,
        desc="full SLQ",
    )
    if grid is None:
        grid = common_grid([runs], grid_points)
    grid = np.asarray(grid, dtype=np.float64)
    lo, hi = extreme_eigenvalues(runs)
    rho = density(runs, grid, sigma2=sigma2, scale_by_range=scale_by_range)
    return grid, SpectrumEstimate("full", hess.dim, runs, lo, hi, rho, params=list(hess.names))
