"""What a number was measured on: the device, the software versions and the thread count.

Benchmark rows (`results/bench/*.json`) and finished runs (`complete.json`) record it. Two runs
of one config and seed agree bit for bit only where these agree; elsewhere they differ by
floating-point rounding from the first step, which a run near the edge of a loss plateau can
carry far (results/demo/ablation/README.md)."""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path
from typing import Any

import torch

__all__ = ["cpu_name", "device_name", "environment"]


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def device_name(device_type: str) -> str:
    """"cuda-<GPU name>" or "cpu-<CPU model>"."""
    if device_type == "cuda":
        return f"cuda-{torch.cuda.get_device_name(0)}"
    return f"cpu-{cpu_name()}"


def environment(device_type: str) -> dict[str, Any]:
    """Library versions, platform, torch's intra-op threads and matmul precision (and the CUDA
    versions and GPU count on "cuda")."""
    import transformers

    env: dict[str, Any] = {
        "torch": torch.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if device_type == "cuda":
        env.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                   gpu_count=torch.cuda.device_count())
    return env
