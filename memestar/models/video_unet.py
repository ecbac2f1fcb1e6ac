"""A stock `diffusers.UNet2DConditionModel` inflated to video by small, explicit surgery.

The surgery keeps every SD weight name, so SD weights load strictly before or after it:
- each transformer block's `attn1` gets a `SparseCausalAttnProcessor` (`frame_attention`: frames 0 and i-1, or
  frame i's own as well);
- each transformer block gets `norm_temp` + `attn_temp` (temporal attention, zero output projection), with
  `frame_positions` a sinusoidal encoding of the frame index added to its input (AnimateDiff; without it temporal
  attention cannot tell frames apart, and motion is learned only through what the frames show);
- with `group_norm="frames"`, the resnets' GroupNorms and `conv_norm_out` pool statistics over frames
  (Tune-A-Video); with `"per-frame"` they stay per frame (AnimateDiff v2).
2D convolutions already run per frame on `(b f) c h w`.

Caution: `unet.set_attn_processor(p)` and `unet.fuse_qkv_projections()` replace every processor and
undo the sparse-causal attention; set processors per module.
"""

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from .attention import SparseCausalAttnProcessor, add_temporal_attention
from .frame_context import FrameContext
from .group_norm import span_frames
from .layout import (
    DEFAULT_FRAME_ATTENTION,
    DEFAULT_FRAME_POSITIONS,
    DEFAULT_GROUP_NORM,
    FRAME_ATTENTION_MODES,
    GROUP_NORM_MODES,
    TEMPORAL_PATTERNS,
    TRAINABLE_PATTERNS,
    layout_of,
)


class VideoUNet(nn.Module):
    """Runs an inflated UNet on video latents `b c f h w` with one text embedding per clip."""

    def __init__(
        self,
        unet: UNet2DConditionModel,
        group_norm: str = DEFAULT_GROUP_NORM,
        frame_positions: bool = DEFAULT_FRAME_POSITIONS,
        frame_attention: str = DEFAULT_FRAME_ATTENTION,
    ):
        super().__init__()
        if group_norm not in GROUP_NORM_MODES:
            raise ValueError(f"group_norm must be one of {GROUP_NORM_MODES}, not {group_norm!r}")
        if frame_attention not in FRAME_ATTENTION_MODES:
            raise ValueError(f"frame_attention must be one of {FRAME_ATTENTION_MODES}, not {frame_attention!r}")
        self.unet = unet
        self.group_norm = group_norm
        self.frame_positions = bool(frame_positions)
        self.frame_attention = frame_attention
        self.frame_context = FrameContext()
        _inflate(unet, self.frame_context, group_norm, self.frame_positions, frame_attention == "first-previous-self")

    @property
    def layout(self) -> dict:
        """What it was built with, as the constructor takes it (and `meme.json` records it)."""
        return layout_of(self)

    @property
    def config(self):
        return self.unet.config

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def device(self) -> torch.device:
        return self.unet.device

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = sample.shape
        x = sample.transpose(1, 2).reshape(b * f, c, h, w)  # (b f) c h w
        t = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(b)
        t = t[:, None].expand(b, f).reshape(b * f)
        text = encoder_hidden_states[:, None].expand(-1, f, -1, -1).flatten(0, 1)  # (b f) L d
        with self.frame_context.use(f):
            out = self.unet(x, t, text, return_dict=False)[0]
        return out.reshape(b, f, -1, h, w).transpose(1, 2)  # b c f h w

    def frames(self, f: int):
        """Holds the frame count over more than one forward, e.g. a training step's forward and backward."""
        return self.frame_context.use(f)

    def trainable_parameters(self, tuned: str = "all") -> dict[str, nn.Parameter]:
        """The tuned tensors by their SD-style names (relative to the 2D UNet); `tuned="temporal"`: only the temporal
        attention's."""
        patterns = TRAINABLE_PATTERNS if tuned == "all" else TEMPORAL_PATTERNS
        return {name: p for name, p in self.unet.named_parameters() if any(k in "." + name for k in patterns)}

    def set_trainable(self) -> None:
        for name, p in self.unet.named_parameters():
            p.requires_grad_(is_trainable(name))

    def parameter_counts(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.unet.parameters())
        temporal = sum(p.numel() for n, p in self.unet.named_parameters() if "_temp." in n)
        trainable = sum(p.numel() for p in self.trainable_parameters().values())
        return {"total": total, "temporal": temporal, "trainable": trainable}


def is_trainable(name: str) -> bool:
    name = "." + name
    return any(pattern in name for pattern in TRAINABLE_PATTERNS)


def _inflate(
    unet: UNet2DConditionModel, ctx: FrameContext, group_norm: str, frame_positions: bool, own_frame: bool
) -> None:
    blocks = [m for m in unet.modules() if isinstance(m, BasicTransformerBlock)]
    if not blocks:
        raise ValueError("the UNet has no transformer blocks to inflate")
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(0)  # the same base always inflates to the same model (CPU init)
        for block in blocks:
            if block.attn1.is_cross_attention or block.only_cross_attention:
                raise ValueError("sparse-causal attention needs self-attention in attn1")
            block.attn1.set_processor(SparseCausalAttnProcessor(ctx, own_frame))
            add_temporal_attention(block, ctx, frame_positions)
    if group_norm == "frames":
        for resnet in [m for m in unet.modules() if isinstance(m, ResnetBlock2D)]:
            span_frames(resnet.norm1, ctx)
            span_frames(resnet.norm2, ctx)
        if isinstance(unet.conv_norm_out, nn.GroupNorm):
            span_frames(unet.conv_norm_out, ctx)
