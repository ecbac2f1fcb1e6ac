"""Batch sizes: how many clips run together, and the sizes whose captures (CUDA graphs, TensorRT profiles) serve
every batch up to the largest. Shared by the exported graphs, the runtime and the server."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MAX_BATCH = 8  # clips sampled together (and the exported graphs' largest batch); more go in several batches
BATCH_BUCKETS = (1, 2, 4, 8)  # a batch runs at the smallest of these that holds it, padded


def bucket(n: int) -> int:
    """The batch size that runs n clips: the smallest bucket that holds them (n itself above the largest)."""
    return next((b for b in BATCH_BUCKETS if b >= n), n)


def padded(t: torch.Tensor, rows: int) -> torch.Tensor:
    """`t` with copies of its first row appended up to `rows` rows."""
    import torch

    return torch.cat([t, t[:1].expand(rows - len(t), *t.shape[1:])]) if rows > len(t) else t
