"""Time and memory measurements for training logs.

GPU memory is PyTorch's allocator view (`max_memory_allocated`: the peak of live tensors, the
number the report's Figure 4 compares; `max_memory_reserved`: what the caching allocator holds
from the driver). Peaks are reset at the start of each epoch. Without a GPU we report the
process's resident set size instead, which includes the interpreter and libraries.
"""

from __future__ import annotations

import time

import psutil
import torch

GIB = 1024**3


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def memory_stats(device: torch.device) -> dict[str, float]:
    """Peak memory since the last reset, in GiB."""
    if device.type == "cuda":
        return {
            "gpu_mem_peak_allocated_gib": torch.cuda.max_memory_allocated(device) / GIB,
            "gpu_mem_peak_reserved_gib": torch.cuda.max_memory_reserved(device) / GIB,
        }
    return {"rss_gib": psutil.Process().memory_info().rss / GIB}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Throughput:
    """Mean step time and examples per second between two `read()` calls."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        synchronize(self.device)
        self._start = time.perf_counter()
        self.steps = 0
        self.examples = 0

    def update(self, examples: int) -> None:
        self.steps += 1
        self.examples += examples

    def read(self) -> dict[str, float]:
        synchronize(self.device)  # only here, not every step: GPU work is asynchronous
        elapsed = time.perf_counter() - self._start
        out = {
            "step_time_s": elapsed / max(self.steps, 1),
            "examples_per_s": self.examples / elapsed if elapsed > 0 else 0.0,
        }
        self.reset()
        return out
