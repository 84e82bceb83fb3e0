"""Data parallelism over N processes, with explicit collectives (no DDP).

Launch one process per device with an existing launcher (``torchrun``, ``accelerate launch``,
or ``srun`` with one task per GPU: ``slurm/train_multi_gpu.sbatch``); `accelerate.Accelerator`
opens the process group from their environment variables (gloo on CPU, NCCL on GPUs). Why not
DDP: DDP's reducer does not support double backward (torch issues 47562, 63812), which every
curvature step needs. Instead, every step does what DDP would do, by hand, so first- and
second-order steps share one code path:

* ``trainer.batch_size`` is the *global* batch. Each rank forwards its shard of it
  (`secondorder.optim.protocol.shard_ranges`) with the loss weighted by shard size / global
  size, so the sum over ranks of the local gradients is the global batch's gradient, and
  :meth:`World.sum_gradients` makes every rank hold that sum.
* On curvature steps each rank keeps the double-backward graph of its own shard; all ranks draw
  the same Rademacher ``z`` (the optimizers' generators share the config's seed), and the
  optimizers call ``hooks.reduce_products`` (:meth:`World.sum_`) on every Hessian-vector
  product, so ``H z`` is the global batch's. Steps are then the single-process step on the
  global batch, up to the order of floating-point sums.
* Evaluation batches are split across ranks and the logits gathered; rank 0 post-processes,
  scores, logs and writes checkpoints. Every rank keeps the same weights and optimizer state.

With one process (the usual case) :data:`SINGLE` does nothing and costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from secondorder.optim.protocol import split_range


@dataclass(frozen=True)
class World:
    """This process's rank among `size` data-parallel processes."""

    rank: int = 0
    size: int = 1

    @classmethod
    def current(cls) -> World:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    # -------------------------------------------------------------------- tensors
    def sum_(self, tensors: Sequence[Tensor]) -> None:
        """All-reduce (sum) `tensors` in place: one collective per dtype and device."""
        if not self.distributed or not tensors:
            return
        import torch.distributed as dist

        by_kind: dict[tuple, list[Tensor]] = {}
        for t in tensors:
            by_kind.setdefault((t.dtype, t.device), []).append(t)
        with torch.no_grad():
            for group in by_kind.values():
                flat = torch.cat([t.detach().reshape(-1) for t in group])
                dist.all_reduce(flat)
                offset = 0
                for t in group:
                    n = t.numel()
                    t.copy_(flat[offset:offset + n].view_as(t))
                    offset += n

    def sum_gradients(self, params: Sequence[Tensor]) -> None:
        """Make every rank's ``p.grad`` the sum over ranks.

        A parameter with a gradient on some rank but not on this one (its shard was empty, or
        did not reach it) gets a zero gradient first; one with no gradient on any rank keeps
        ``None``, as in a single process. Gradients that carry a double-backward graph keep it:
        the sum is written into them under ``no_grad`` (as clipping does), and the
        Hessian-vector products from the local graph are summed by the optimizer.
        """
        if not self.distributed:
            return
        params = [p for p in params if p.requires_grad]
        if not params:
            return
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32,
                           device=params[0].device)
        self.sum_([has])
        for p, anywhere in zip(params, has.tolist(), strict=True):
            if anywhere and p.grad is None:
                p.grad = torch.zeros_like(p)
        self.sum_([p.grad for p in params if p.grad is not None])

    def sum_value(self, value: Tensor, device: torch.device | str) -> Tensor:
        """The sum over ranks of a scalar, in float64 on `device` (the same kind of tensor on
        every rank, whatever each rank's part was)."""
        if not self.distributed:
            return value
        out = value.detach().reshape(1).to(device=device, dtype=torch.float64, copy=True)
        self.sum_([out])
        return out.reshape(())

    def maximum(self, value: float, device: torch.device | str = "cpu") -> float:
        """The largest `value` over ranks, on every rank."""
        if not self.distributed:
            return float(value)
        import torch.distributed as dist

        t = torch.tensor([float(value)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Rank 0's weights and buffers on every rank (a guard: they are built identically)."""
        if not self.distributed:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, src=0)

    # -------------------------------------------------------------------- objects
    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def split(self, n: int) -> tuple[int, int]:
        """This rank's contiguous part [start, stop) of n items (the first n % size ranks get one
        more)."""
        return split_range(n, self.rank, self.size)


SINGLE = World()
