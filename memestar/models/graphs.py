"""The graphs a meme exports: one list of specs, read by the export stage (what to build and check) and by the
graph backends of the runtime (what to feed and what comes back).

Every graph takes a batch of n clips (or prompts) on its first axis, n from 1 to `MAX_BATCH` (dynamic in the
ONNX files: `batch`); the runtime runs the UNet at the batch buckets and the others one at a time (`buckets`:
one TensorRT profile each):
- `text_encoder`: token ids (n, L) int64 and each prompt's learned subjects' rows (n, K, d) -> embeddings (n, L, d).
  Ids from the base's vocabulary size V on are learned rows: V + k is the prompt's row k, so a subject learned
  after the export runs on it (`meme subject learn`). Exports made before it take the ids alone
  (`TensorSpec.required`).
- `unet`: latents (n, c, f, h, w), timestep (1,) int64 (one step for the whole batch), text (n, 2, L, d) as
  (unconditional, conditional) per clip, guidance (n,) -> the guided model output (n, c, f, h, w).
  Classifier-free guidance runs inside the graph as one UNet batch of 2n; no guidance is the conditional text
  twice with guidance 1 (so it costs two passes).
- `vae_decoder`: latents (n, c, f, h, w) -> frames (n, f, H, W, 3), fp32 in [0, 255] (rounded on the host).
- `vae_encoder`: frames (n, f, H, W, 3) fp32 in [0, 255] -> latents (n, c, f, h, w), the posterior's mean: an
  animated still's start (`meme gen --image`). Exports made before it lack it (`GraphSpec.required`).
Inputs and outputs are fp32 (ids and timesteps int64) whatever the graph's precision; casts happen inside.
All other sizes are static per meme (`Shapes`).
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..checks import MAX_LEARNED_PER_PROMPT
from ..records import record
from ..sampling.batch import BATCH_BUCKETS, MAX_BATCH
from .text import encode_token_rows
from .vae import decode_pixels
from .video_unet import VideoUNet

BATCH_AXIS = "batch"  # the name of the dynamic first axis in the ONNX files
EXPORT_BATCH = 2  # the batch the exporter traces (not 1: a size of 1 would be taken for a constant)

TEXT_ENCODER, UNET, VAE_DECODER, VAE_ENCODER = "text_encoder", "unet", "vae_decoder", "vae_encoder"
# in an export's key (and so its engines'): bumped when a graph's inputs or computation change, so that `meme
# export` builds anew rather than reusing what an older meme-star built. 2: the text encoder's learned rows
GRAPHS_VERSION = "2"


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
    """The text encoder with rows of its own per prompt: id `vocab + k` is the row `learned[:, k]` (a learned
    subject's), every other id the base's row."""

    def __init__(self, text_encoder, vocab: int):
        super().__init__()
        self.text_encoder, self.vocab = text_encoder, vocab

    def forward(self, input_ids: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
        base_rows = self.text_encoder.get_input_embeddings()(input_ids.clamp(max=self.vocab - 1))  # n L d
        slot = (input_ids - self.vocab).clamp(0, learned.shape[1] - 1)  # n L
        learned_rows = learned.to(base_rows.dtype).gather(1, slot[..., None].expand_as(base_rows))  # n L d
        rows = torch.where((input_ids >= self.vocab)[..., None], learned_rows, base_rows)
        return encode_token_rows(self.text_encoder, rows).float()


class GuidedUNetGraph(nn.Module):
    """Classifier-free guidance as one UNet batch of 2n, written without shape tests (`guided_output` picks its
    case from the shapes; a traced graph must take every batch size the same way)."""

    def __init__(self, video: VideoUNet):
        super().__init__()
        self.video = video

    def forward(self, latents, timestep, text, guidance) -> torch.Tensor:
        n, dtype = latents.shape[0], self.video.dtype
        text = text.transpose(0, 1).reshape(-1, *text.shape[2:])  # (2 n) L d: unconditional, then conditional
        out = self.video(torch.cat([latents, latents]).to(dtype), timestep, text.to(dtype)).float()
        u, c = out[:n], out[n:]
        return u + guidance.view(-1, 1, 1, 1, 1) * (c - u)


class VaeDecoderGraph(nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return decode_pixels(self.vae, latents, chunk=None)  # every frame of the batch in one decoder call


class VaeEncoderGraph(nn.Module):
    """`encode_pixels` with every frame in one call, on a copy of the VAE's encoder half: the exporter casts each
    graph's module to its precision and then frees it, which must leave the VAE of the decoder's graph (built
    after this one) as it was."""

    def __init__(self, vae):
        super().__init__()
        self.encoder, self.quant_conv = copy.deepcopy(vae.encoder), copy.deepcopy(vae.quant_conv)
        self.scaling = vae.config.scaling_factor

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        n, f = pixels.shape[:2]
        x = pixels.flatten(0, 1).permute(0, 3, 1, 2).to(self.encoder.conv_in.weight.dtype) / 127.5 - 1  # (n f) 3 H W
        moments = self.encoder(x)
        if self.quant_conv is not None:
            moments = self.quant_conv(moments)
        mean = moments.chunk(2, dim=1)[0] * self.scaling  # the posterior's mean, (n f) c h w
        return mean.float().reshape(n, f, *mean.shape[1:]).transpose(1, 2)  # n c f h w


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, dtype, shape for n clips (from the meme's `Shapes`), whether its first
    axis is the batch and, for inputs, how to draw a random value of it for the export's self-check."""

    name: str
    dtype: torch.dtype
    shape: Callable[[Shapes, int], tuple[int, ...]]
    draw: Callable[[tuple[int, ...], Shapes, torch.Generator], torch.Tensor] | None = None
    batched: bool = True
    required: bool = True  # False: an export made before this input existed is still read, and run without it

    def named_shape(self, shapes: Shapes) -> list[int | str]:
        """The shape with its batch axis named, as the ONNX file holds it."""
        shape = list(self.shape(shapes, 1))
        return [BATCH_AXIS, *shape[1:]] if self.batched else shape


@dataclass(frozen=True)
class GraphSpec:
    name: str
    module: Callable[[object, VideoUNet], nn.Module]  # (base model, video UNet with its adapter) -> the graph
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    buckets: tuple[int, ...] = (1,)  # the batch sizes the runtime runs it at (TensorRT: one profile each)
    required: bool = True  # False: an export made before this graph existed is still read (without it)

    def random_inputs(self, shapes: Shapes, n: int = EXPORT_BATCH, seed: int = 0) -> dict[str, torch.Tensor]:
        """Random inputs for n clips of the right shapes and dtypes, the same for a given seed."""
        g = torch.Generator().manual_seed(seed)
        return {t.name: t.draw(t.shape(shapes, n), shapes, g) for t in self.inputs}

    def inputs_named(self, names: list[str]) -> tuple[TensorSpec, ...]:
        """The inputs an export's graph takes (`names`, as its export.json records them): all, or an older export's
        required ones."""
        return tuple(t for t in self.inputs if t.name in names)

    def dynamic_shapes(self) -> tuple:
        """For torch's exporter: the batch axis of each input as one dimension of 1 to `MAX_BATCH`."""
        batch = torch.export.Dim(BATCH_AXIS, min=1, max=MAX_BATCH)
        return tuple({0: batch} if t.batched else None for t in self.inputs)

    @property
    def output(self) -> TensorSpec:
        return self.outputs[0]


def _latents(s: Shapes, n: int) -> tuple[int, ...]:
    return (n, s.latent_channels, s.frames, s.latent_side, s.latent_side)


def _pixels(s: Shapes, n: int) -> tuple[int, ...]:
    return (n, s.frames, s.pixel_side, s.pixel_side, 3)


def _levels(shape, s, g):
    return 255 * torch.rand(shape, generator=g)


def _normal(shape, s, g):
    return torch.randn(shape, generator=g)


GRAPHS: tuple[GraphSpec, ...] = (
    GraphSpec(
        TEXT_ENCODER,
        lambda base, video: TextEncoderGraph(base.text_encoder, len(base.tokenizer)),
        inputs=(
            TensorSpec(
                "input_ids",
                torch.int64,
                lambda s, n: (n, s.text_length),
                lambda shape, s, g: torch.randint(0, s.vocab_size + MAX_LEARNED_PER_PROMPT, shape, generator=g),
            ),
            TensorSpec(
                "learned",
                torch.float32,
                lambda s, n: (n, MAX_LEARNED_PER_PROMPT, s.text_width),
                lambda shape, s, g: 0.02 * torch.randn(shape, generator=g),
                required=False,
            ),
        ),
        outputs=(TensorSpec("embeddings", torch.float32, lambda s, n: (n, s.text_length, s.text_width)),),
    ),
    GraphSpec(
        UNET,
        lambda base, video: GuidedUNetGraph(video),
        inputs=(
            TensorSpec("latents", torch.float32, _latents, _normal),
            TensorSpec(
                "timestep",
                torch.int64,
                lambda s, n: (1,),
                lambda shape, s, g: torch.randint(1, 1000, shape, generator=g),
                batched=False,
            ),
            TensorSpec("text", torch.float32, lambda s, n: (n, 2, s.text_length, s.text_width), _normal),
            TensorSpec(
                "guidance",
                torch.float32,
                lambda s, n: (n,),
                lambda shape, s, g: 1 + 10 * torch.rand(shape, generator=g),
            ),
        ),
        outputs=(TensorSpec("model_output", torch.float32, _latents),),
        buckets=BATCH_BUCKETS,
    ),
    GraphSpec(  # before the decoder: `VaeEncoderGraph`
        VAE_ENCODER,
        lambda base, video: VaeEncoderGraph(base.vae),
        inputs=(TensorSpec("pixels", torch.float32, _pixels, _levels),),
        outputs=(TensorSpec("latents", torch.float32, _latents),),
        required=False,
    ),
    GraphSpec(
        VAE_DECODER,
        lambda base, video: VaeDecoderGraph(base.vae),
        inputs=(TensorSpec("latents", torch.float32, _latents, _normal),),
        outputs=(TensorSpec("pixels", torch.float32, _pixels),),
    ),
)
GRAPH_SPECS = {spec.name: spec for spec in GRAPHS}
