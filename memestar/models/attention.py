"""Tune-A-Video's two attention changes, as pieces that attach to a stock diffusers UNet.

- `SparseCausalAttnProcessor` replaces the spatial self-attention of each transformer block (`attn1`):
  frame i's queries attend to the keys and values of frame 0 and frame i-1 (frame 0 to itself twice), and with
  `own_frame` to frame i's as well.
- `add_temporal_attention` gives each `BasicTransformerBlock` a LayerNorm + self-attention over the
  frame axis at every spatial position, added as a residual after the block by a forward hook, with the
  output projection zeroed so the inflated model starts as the image model; with `frame_positions`, each frame's
  index (a sinusoidal encoding) is added to that attention's input, so it can learn what happens when.
"""

import math

import torch
import torch.nn.functional as F
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

from .frame_context import FrameContext


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    # B n (h d) -> B h n d
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


class SparseCausalAttnProcessor:
    """Self-attention where frame i sees frames 0 and i-1: keys/values are `[frame 0, frame i-1]`, and
    `[frame 0, frame i-1, frame i]` with `own_frame`."""

    def __init__(self, ctx: FrameContext, own_frame: bool = False):
        self.ctx = ctx
        self.own_frame = own_frame

    def __call__(
        self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs
    ):
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("SparseCausalAttnProcessor is for self-attention without a mask")
        f = self.ctx.num_frames
        bf, n, _ = hidden_states.shape  # (b f) n c
        b = bf // f

        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states).view(b, f, n, -1)
        value = attn.to_v(hidden_states).view(b, f, n, -1)

        def first_and_previous(x):
            # b f n c -> (b f) 2n c: frame 0's tokens, then frame i-1's (frame 0 for i = 0); 3n with frame i's own
            first = x[:, :1].expand(-1, f, -1, -1)
            previous = torch.cat([x[:, :1], x[:, :-1]], dim=1)
            parts = [first, previous, x] if self.own_frame else [first, previous]
            return torch.cat(parts, dim=2).reshape(bf, len(parts) * n, -1)

        key, value = first_and_previous(key), first_and_previous(value)
        query, key, value = (_split_heads(t, attn.heads) for t in (query, key, value))
        if attn.norm_q is not None:
            query, key = attn.norm_q(query), attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, scale=attn.scale)
        out = out.transpose(1, 2).flatten(2).to(query.dtype)  # (b f) n (h d)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def frame_position_encoding(f: int, c: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`f c`: the sinusoidal encoding of each frame's index (Transformer's, as AnimateDiff's motion module adds it),
    so temporal attention can tell frame 3 from frame 9 and learn motion as a function of time."""
    position = torch.arange(f, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, c, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / c))
    angle = position * rate  # f ceil(c/2)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)[:, :c].to(dtype)  # sin, cos interleaved


def _temporal_residual(block: BasicTransformerBlock, args, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: `output + attn_temp(norm_temp(output) [+ frame positions])` with attention across frames."""
    f = block.frame_context.num_frames
    bf, n, c = output.shape  # (b f) n c
    x = output.view(bf // f, f, n, c).transpose(1, 2).reshape(-1, f, c)  # (b n) f c
    h = block.norm_temp(x)
    if block.frame_positions:
        h = h + frame_position_encoding(f, c, h.dtype, h.device)
    x = x + block.attn_temp(h)
    return x.view(bf // f, n, f, c).transpose(1, 2).reshape(bf, n, c)


def add_temporal_attention(block: BasicTransformerBlock, ctx: FrameContext, frame_positions: bool = False) -> None:
    """Adds `norm_temp` and `attn_temp` to `block` (keeping SD's weight names) and hooks them in."""
    dim = block.dim
    block.norm_temp = nn.LayerNorm(dim)
    block.attn_temp = Attention(
        query_dim=dim,
        heads=block.num_attention_heads,
        dim_head=block.attention_head_dim,
        bias=block.attention_bias,
        processor=AttnProcessor2_0(),
    )
    nn.init.zeros_(block.attn_temp.to_out[0].weight)
    nn.init.zeros_(block.attn_temp.to_out[0].bias)
    param = next(block.parameters())
    block.norm_temp.to(device=param.device, dtype=param.dtype)
    block.attn_temp.to(device=param.device, dtype=param.dtype)
    block.frame_context = ctx
    block.frame_positions = frame_positions
    block.register_forward_hook(_temporal_residual)
