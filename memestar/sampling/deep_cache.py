"""Reusing the UNet's deep features between adjacent denoising steps (DeepCache, Ma et al. 2024), by surgery on a
stock `UNet2DConditionModel`.

From one step to the next the UNet's deep features (everything under its first level: the deeper down blocks, the
middle block and the deeper up blocks, their temporal attention included) change little, while its shallow level
(`conv_in`, the first down block, the last up block, `conv_out`) carries the detail. A step that `store`s runs the
whole UNet and keeps what the deep path hands the last up block; a step that `reuse`s runs only the shallow level,
with the skip connections of its own first down block and the deep features kept from the last `store`. The deep
blocks' `forward`s are wrapped per instance (no weight is renamed); with no mode set they run as they are.

`cache_plan` says which steps store and which reuse: one full step, then `interval - 1` that reuse it.
"""

from contextlib import contextmanager

import torch
from torch import nn

CACHE_MODES = (None, "store", "reuse")


def cache_plan(guided: list[bool], interval: int) -> list[str | None]:
    """Per step: "store" (the whole UNet, its deep features kept), "reuse" (the shallow level on the kept ones), or
    None (the whole UNet, nothing kept: `interval` 1). Guided steps run the UNet on twice the rows of unguided ones
    (unconditional, then conditional): features kept on an unguided step cannot serve a guided one, which then
    stores afresh."""
    if interval == 1:
        return [None] * len(guided)
    plan, stored_at, stored_guided = [], None, False
    for i, g in enumerate(guided):
        if stored_at is not None and i - stored_at < interval and (stored_guided or not g):
            plan.append("reuse")
        else:
            plan.append("store")
            stored_at, stored_guided = i, g
    return plan


class DeepCache:
    """Wraps the deep blocks of `unet` so that `mode("store")` keeps the deep features of a forward and
    `mode("reuse")` skips the deep blocks, handing the last up block the kept features instead."""

    def __init__(self, unet: nn.Module):
        if len(unet.down_blocks) < 2 or len(unet.up_blocks) < 2 or unet.mid_block is None:
            raise ValueError("deep feature reuse needs a UNet with at least two levels and a middle block")
        self._mode: str | None = None
        self.features: torch.Tensor | None = None  # (rows f) c h w: what the deep path handed the last up block
        for block in unet.down_blocks[1:]:
            self._wrap(block, self._skip_down)
        self._wrap(unet.mid_block, self._skip_through)
        for block in unet.up_blocks[:-2]:
            self._wrap(block, self._skip_through)
        self._wrap(unet.up_blocks[-2], self._kept_features, keeps=True)

    def _wrap(self, block: nn.Module, skipped, keeps: bool = False) -> None:
        run = block.forward

        def forward(*args, **kwargs):
            if self._mode == "reuse":
                return skipped(block, *args, **kwargs)
            out = run(*args, **kwargs)
            if keeps and self._mode == "store":
                self.features = out
            return out

        block.forward = forward

    @staticmethod
    def _hidden(args, kwargs) -> torch.Tensor:
        return kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]

    def _skip_down(self, block, *args, **kwargs):
        """A skipped down block hands on its input, and as many skip connections as it would (the UNet pairs them
        with up blocks by count; the deep up blocks that would read these are skipped too)."""
        hidden = self._hidden(args, kwargs)
        skips = len(block.resnets) + (len(block.downsamplers) if block.downsamplers is not None else 0)
        return hidden, (hidden,) * skips

    def _skip_through(self, block, *args, **kwargs):
        return self._hidden(args, kwargs)

    def _kept_features(self, block, *args, **kwargs):
        rows = len(self._hidden(args, kwargs))
        if self.features is None or len(self.features) < rows:
            raise RuntimeError("a deep-feature reuse step with no stored step of as many rows before it")
        return self.features[-rows:]  # the conditional half of a guided step's features serves an unguided step

    @contextmanager
    def mode(self, mode: str | None):
        """Runs the UNet's forwards inside in `mode` (`CACHE_MODES`)."""
        if mode not in CACHE_MODES:
            raise ValueError(f"unknown deep-cache mode {mode!r}")
        previous, self._mode = self._mode, mode
        try:
            yield
        finally:
            self._mode = previous
