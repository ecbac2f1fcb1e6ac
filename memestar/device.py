"""Choosing the device and the compute precision. torch is imported where a device is chosen, not here: the
options that name a device and a precision are read by the CLI, which starts without torch."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

from .errors import MemeError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
EXPORT_PRECISIONS = ("fp32", "fp16")  # what an export holds (bf16 runs in torch only)
DEFAULT_DEVICE = "auto"  # a CUDA GPU when torch sees one, else the CPU


def pick_device(device: str | None = DEFAULT_DEVICE) -> torch.device:
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MemeError(f"device {device} asked for, but torch sees no CUDA GPU: use --device cpu")
    chosen = torch.device(device)
    if chosen.type == "cuda" and chosen.index is not None:
        if chosen.index >= torch.cuda.device_count():
            raise MemeError(
                f"device {device} asked for, but torch sees {torch.cuda.device_count()} GPU(s): use "
                f"cuda:0 to cuda:{torch.cuda.device_count() - 1}"
            )
        torch.cuda.set_device(chosen)  # streams, graphs and events use the current device
    return chosen


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """`auto`: bf16 on GPUs that have it, else fp16 on GPU; fp32 on CPU."""
    import torch

    if precision not in PRECISIONS:
        raise MemeError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    if device.type == "cuda":
        native_bf16 = torch.cuda.get_device_capability(device)[0] >= 8  # Ampere on; older GPUs only emulate it
        return torch.bfloat16 if native_bf16 else torch.float16
    return torch.float32


def peak_memory_bytes(device: torch.device) -> int:
    """Device allocator peak on GPU; the process's peak resident set on CPU."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def device_name(device: torch.device) -> str:
    """The device as reports name it: the GPU's model, or the CPU's architecture and torch's thread count."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.machine()}, {torch.get_num_threads()} threads"
