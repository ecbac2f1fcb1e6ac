"""The frame count, shared by every inflated layer of one video UNet.

A video latent is `b c f h w`; 2D layers see `(b f) c h w` and cannot tell where one clip ends. The
video wrapper sets `num_frames` from `sample.shape[2]` before each forward; the attention processors,
the frame-spanning GroupNorms and the temporal branch read it. It is a plain int, so traced and
exported graphs see it as a constant (static frames per meme).
"""

from dataclasses import dataclass


@dataclass
class FrameContext:
    num_frames: int = 1
