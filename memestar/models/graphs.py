"""The graphs a meme exports: one list of specs, read by the export stage (what to build and check) and by the
graph backends of the runtime (what to feed and what comes back).

- `text_encoder`: token ids (1, L) int64 -> embeddings (1, L, d).
- `unet`: latents (1, c, f, h, w), timestep (1,) int64, text (2, L, d) as (unconditional, conditional),
  guidance (1,) -> the guided model output (1, c, f, h, w). Classifier-free guidance runs inside the graph as
  one batch of two; no guidance is the conditional text twice with guidance 1 (so it costs two passes).
- `vae_decoder`: latents (1, c, f, h, w) -> frames (1, f, H, W, 3), fp32 in [0, 255] (rounded on the host).
Inputs and outputs are fp32 (ids and timesteps int64) whatever the graph's precision; casts happen inside.
Shapes are static per meme (`Shapes`).
"""

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..records import record
from .guidance import guided_output
from .vae import decode_pixels
from .video_unet import VideoUNet

TEXT_ENCODER, UNET, VAE_DECODER = "text_encoder", "unet", "vae_decoder"


@record
class Shapes:
    """What fixes a meme's graphs: frames, latent size and channels, text length and width, token vocabulary."""
    frames: int
    latent_channels: int
    latent_side: int
    text_length: int
    text_width: int
    vocab_size: int
    pixel_side: int

    def problem(self) -> str | None:
        small = [k for k, v in vars(self).items() if v < 1]
        return f"field shapes.{small[0]}: must be at least 1" if small else None


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
class TensorSpec:
    """One input or output: its name, dtype, shape (from the meme's `Shapes`) and, for inputs, how to draw a
    random value of it for the export's self-check."""
    name: str
    dtype: torch.dtype
    shape: Callable[[Shapes], tuple[int, ...]]
    draw: Callable[[tuple[int, ...], Shapes, torch.Generator], torch.Tensor] | None = None


@dataclass(frozen=True)
class GraphSpec:
    name: str
    module: Callable[[object, VideoUNet], nn.Module]  # (base model, video UNet with its adapter) -> the graph
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def random_inputs(self, shapes: Shapes, seed: int = 0) -> dict[str, torch.Tensor]:
        """Random inputs of the right shapes and dtypes, the same for a given seed."""
        g = torch.Generator().manual_seed(seed)
        return {t.name: t.draw(t.shape(shapes), shapes, g) for t in self.inputs}

    @property
    def output(self) -> TensorSpec:
        return self.outputs[0]


def _latents(s: Shapes) -> tuple[int, ...]:
    return (1, s.latent_channels, s.frames, s.latent_side, s.latent_side)


def _normal(shape, s, g):
    return torch.randn(shape, generator=g)


GRAPHS: tuple[GraphSpec, ...] = (
    GraphSpec(TEXT_ENCODER, lambda base, video: TextEncoderGraph(base.text_encoder),
              inputs=(TensorSpec("input_ids", torch.int64, lambda s: (1, s.text_length),
                                 lambda shape, s, g: torch.randint(0, s.vocab_size, shape, generator=g)),),
              outputs=(TensorSpec("embeddings", torch.float32, lambda s: (1, s.text_length, s.text_width)),)),
    GraphSpec(UNET, lambda base, video: GuidedUNetGraph(video),
              inputs=(TensorSpec("latents", torch.float32, _latents, _normal),
                      TensorSpec("timestep", torch.int64, lambda s: (1,),
                                 lambda shape, s, g: torch.randint(1, 1000, shape, generator=g)),
                      TensorSpec("text", torch.float32, lambda s: (2, s.text_length, s.text_width), _normal),
                      TensorSpec("guidance", torch.float32, lambda s: (1,),
                                 lambda shape, s, g: torch.full(shape, 7.5))),
              outputs=(TensorSpec("model_output", torch.float32, _latents),)),
    GraphSpec(VAE_DECODER, lambda base, video: VaeDecoderGraph(base.vae),
              inputs=(TensorSpec("latents", torch.float32, _latents, _normal),),
              outputs=(TensorSpec("pixels", torch.float32,
                                  lambda s: (1, s.frames, s.pixel_side, s.pixel_side, 3)),)),
)
GRAPH_SPECS = {spec.name: spec for spec in GRAPHS}
