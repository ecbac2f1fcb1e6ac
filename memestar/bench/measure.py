"""Measuring one stage: time (median, p10, p90), peak memory and FLOPs; and the device's own peak FLOP/s.

- Time: CUDA events on GPU, `perf_counter` on CPU, over `repeat` runs after `warmup` runs.
- Memory: the allocator's peak during the runs on GPU; on CPU the process's peak resident set so far
  (the OS keeps only a high-water mark).
- FLOPs: torch's `FlopCounterMode`, with formulas added for the CPU attention kernels torch has none for.
- Device peak: a large matrix product in the same precision, timed the same way.
"""

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from ..device import peak_memory_bytes

aten = torch.ops.aten


def _cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


MISSING_FLOP_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward,
}


def count_flops(fn) -> int:
    """FLOPs of one call of `fn` (matrix products, convolutions and attention; elementwise work is not counted)."""
    counter = FlopCounterMode(display=False, custom_mapping=MISSING_FLOP_FORMULAS)
    with counter:
        fn()
    return counter.get_total_flops()


def quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    position = q * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def time_stage(fn, device: torch.device, repeat: int, warmup: int = 1) -> dict:
    """Seconds per call (median, p10, p90) and peak memory over the timed calls."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    seconds = []
    for _ in range(repeat):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            seconds.append(start.elapsed_time(end) / 1000)
        else:
            t = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - t)
    return {
        "median_s": statistics.median(seconds),
        "p10_s": quantile(seconds, 0.1),
        "p90_s": quantile(seconds, 0.9),
        "peak_memory_bytes": peak_memory_bytes(device),
    }


def matmul_peak_flops(device: torch.device, dtype: torch.dtype, n: int | None = None, repeat: int = 5) -> float:
    """FLOP/s of an n x n x n matrix product in `dtype`: the device's practical peak, measured now."""
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    timing = time_stage(lambda: a @ b, device, repeat=repeat, warmup=2)
    return 2 * n**3 / timing["median_s"]
