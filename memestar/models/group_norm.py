"""GroupNorm whose statistics span all frames of a clip (Tune-A-Video), instead of each frame alone.

A stock `nn.GroupNorm` on `(b f) c h w` normalises each frame by itself (AnimateDiff v2). Swapping an
instance's class to `FrameSpanningGroupNorm` keeps its weights and names and pools the statistics over
the clip. With identical frames both give the same result.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .frame_context import FrameContext


class FrameSpanningGroupNorm(nn.GroupNorm):
    frame_context: FrameContext

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.frame_context.num_frames
        bf, c = x.shape[:2]
        spatial = x.shape[2:]
        x = x.reshape(bf // f, f, c, -1).transpose(1, 2)  # b c f (h w)
        x = F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        return x.transpose(1, 2).reshape(bf, c, *spatial)


def span_frames(norm: nn.GroupNorm, ctx: FrameContext) -> None:
    norm.__class__ = FrameSpanningGroupNorm
    norm.frame_context = ctx
