"""The three graphs a meme exports, as torch modules with static shapes, and random inputs to check them on.

- `text_encoder`: token ids (1, 77) int64 -> embeddings (1, 77, d).
- `unet`: start latents (1, c, f, h, w), timestep (1,) int64, text (2, 77, d) as (unconditional,
  conditional), guidance (1,) -> the guided model output (1, c, f, h, w). Classifier-free guidance runs
  inside the graph as one batch of two; no guidance is conditional text twice with guidance 1.
- `vae_decoder`: latents (1, c, f, h, w) -> frames (1, f, H, W, 3), fp32 in [0, 255] (rounded on the host).
Inputs and outputs stay fp32 whatever the graph's precision; casts happen inside.
"""

from dataclasses import dataclass

import torch
from torch import nn

from ..models.guidance import guided_output
from ..models.vae import decode_pixels
from ..models.video_unet import VideoUNet


class TextEncoderGraph(nn.Module):
    def __init__(self, text_encoder):
        super().__init__()
        self.text_encoder = text_encoder

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids)[0].float()


class GuidedUNetGraph(nn.Module):
    def __init__(self, video: VideoUNet):
        super().__init__()
        self.video = video

    def forward(self, latents, timestep, text, guidance) -> torch.Tensor:
        dtype = self.video.dtype
        return guided_output(lambda x, t, e: self.video(x.to(dtype), t, e).float(), latents, timestep,
                             text.to(dtype), guidance)


class VaeDecoderGraph(nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return decode_pixels(self.vae, latents, chunk=latents.shape[2])


@dataclass(frozen=True)
class Shapes:
    """What fixes a meme's graphs: frames, latent size and channels, text length and width, token vocabulary."""
    frames: int
    latent_channels: int
    latent_side: int
    text_length: int
    text_width: int
    vocab_size: int

    def inputs(self, name: str, seed: int = 0) -> dict[str, torch.Tensor]:
        """Random fp32 (or int64) inputs for graph `name`, the same for a given seed."""
        g = torch.Generator().manual_seed(seed)
        latents = (1, self.latent_channels, self.frames, self.latent_side, self.latent_side)
        if name == "text_encoder":
            return {"input_ids": torch.randint(0, self.vocab_size, (1, self.text_length), generator=g)}
        if name == "unet":
            return {"latents": torch.randn(latents, generator=g),
                    "timestep": torch.randint(1, 1000, (1,), generator=g),
                    "text": torch.randn((2, self.text_length, self.text_width), generator=g),
                    "guidance": torch.tensor([7.5])}
        if name == "vae_decoder":
            return {"latents": torch.randn(latents, generator=g)}
        raise ValueError(f"unknown graph {name!r}")
